package e2e

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // thumbnails
	pngenc "image/png"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/parley-p2p/parley/api"
)

// TestMediaAcceptance is issue 5's acceptance, through the CLI, with a blind
// host in the room: a 640x480 PNG arrives with its dimensions and a
// thumbnail that decodes as an image; a 5 MB file fetched by CID is
// byte-identical; a 2-second voice message reports about 2,000 ms; and no
// plaintext of any of them is stored under the host's home (nor in the
// members' media stores, which hold ciphertext only). The search is shown to
// work by finding every slice in the files B wrote out.
func TestMediaAcceptance(t *testing.T) {
	t.Parallel()
	a, h, b := trio(t, true)
	var rr api.RoomResp
	a.must(&rr, "room", "create", "--name", "acceptance")
	room := rr.Room
	h.must(nil, "room", "host", room, "--via", a.addr)
	a.must(nil, "room", "invite", room, b.user)
	b.must(nil, "room", "join", room, "--via", a.addr)
	waitMembership(t, []*daemon{a, b}, room, b.user, "join")

	rng := rand.New(rand.NewPCG(5, 5))
	dir := t.TempDir()
	// Noise, so that the PNG is large and any 4 KiB of it is distinctive.
	img := image.NewRGBA(image.Rect(0, 0, 640, 480))
	for y := range 480 {
		for x := range 640 {
			img.Set(x, y, color.RGBA{uint8(rng.Uint32()), uint8(x), uint8(y), 255})
		}
	}
	var png bytes.Buffer
	if err := pngenc.Encode(&png, img); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 5<<20)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	wav := acceptWAV(16000, 2000)
	files := map[string][]byte{"photo.png": png.Bytes(), "big.bin": big, "voice.wav": wav}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	var sf api.SendFileResp
	a.must(&sf, "send-file", room, filepath.Join(dir, "photo.png"))
	photo := acceptMedia(t, b, room, sf.Event)
	if photo.Width != 640 || photo.Height != 480 || photo.MIME != "image/png" || photo.ThumbnailCID == "" || photo.ThumbnailKey == "" {
		t.Fatalf("photo %+v", photo)
	}
	out := filepath.Join(b.home, "out") // inside B's home: the search must find it
	if err := os.MkdirAll(out, 0o700); err != nil {
		t.Fatal(err)
	}
	b.must(nil, "media", "get", photo.ThumbnailCID+"#"+photo.ThumbnailKey, "-o", filepath.Join(out, "thumb"))
	tb, err := os.ReadFile(filepath.Join(out, "thumb"))
	if err != nil {
		t.Fatal(err)
	}
	if th, format, err := image.Decode(bytes.NewReader(tb)); err != nil || th.Bounds().Dx() == 0 || th.Bounds().Dx() > 640 {
		t.Fatalf("the thumbnail is not an image: %v (%s)", err, format)
	}
	b.must(nil, "media", "get", photo.CID+"#"+photo.Key, "-o", filepath.Join(out, "photo.png"))

	a.must(&sf, "send-file", room, filepath.Join(dir, "big.bin"))
	file := acceptMedia(t, b, room, sf.Event)
	if file.CID != sf.CID || file.Size != uint64(len(big)) {
		t.Fatalf("file %+v, sent %s", file, sf.CID)
	}
	b.must(nil, "media", "get", file.CID+"#"+file.Key, "-o", filepath.Join(out, "big.bin"))
	if got, err := os.ReadFile(filepath.Join(out, "big.bin")); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("the 5 MB file fetched by CID differs (%v)", err)
	}

	a.must(&sf, "send-file", room, filepath.Join(dir, "voice.wav"), "--voice")
	voice := acceptMedia(t, b, room, sf.Event)
	if !voice.Voice || voice.DurationMS < 1950 || voice.DurationMS > 2050 {
		t.Fatalf("voice %+v", voice)
	}
	b.must(nil, "media", "get", voice.CID+"#"+voice.Key, "-o", filepath.Join(out, "voice.wav"))

	// A distinctive 4 KiB from the middle of each file (past the headers).
	slices := map[string][]byte{
		"photo.png": png.Bytes()[png.Len()/2:][:4096],
		"big.bin":   big[len(big)/2:][:4096],
		"voice.wav": wav[len(wav)/2:][:4096],
	}
	for name, s := range slices {
		if got := filesHolding(t, h.home, s); len(got) > 0 {
			t.Errorf("the blind host stores plaintext of %s in %v", name, got)
		}
		if got := filesHolding(t, filepath.Join(a.home, "media"), s); len(got) > 0 {
			t.Errorf("A's media store holds plaintext of %s in %v", name, got)
		}
		// The check can fail: B's home holds the slice, in the file B
		// wrote out and nowhere else (its media store is ciphertext).
		want := filepath.Join(out, name)
		if got := filesHolding(t, b.home, s); len(got) != 1 || got[0] != want {
			t.Errorf("searching B's home for %s found %v, want [%s]", name, got, want)
		}
	}
}

// filesHolding lists the regular files under root that contain s.
func filesHolding(t *testing.T, root string, s []byte) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) { // a file the daemon removed meanwhile
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if bytes.Contains(data, s) {
			found = append(found, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// acceptMedia waits until d lists message id with its media and returns it.
func acceptMedia(t *testing.T, d *daemon, room, id string) api.MessageMedia {
	t.Helper()
	var got api.MessageMedia
	eventually(t, govTimeout, d.name+" shows media message "+id, func() error {
		evs, err := d.history(room)
		if err != nil {
			return err
		}
		for _, e := range evs {
			if e.ID == id && e.Media != nil {
				got = *e.Media
				return nil
			}
		}
		return fmt.Errorf("not listed with media")
	})
	return got
}

// acceptWAV is ms milliseconds of 16-bit mono PCM at rate Hz: a chirp, so
// that no 4 KiB of it repeats.
func acceptWAV(rate, ms int) []byte {
	n := rate * ms / 1000
	return wavFile(rate, n, func(i int) int16 {
		f := 200 + 1800*float64(i)/float64(n)
		return int16(12000 * math.Sin(float64(i)*2*math.Pi*f/float64(rate)))
	})
}
