package calls

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"
)

// µ-law round trip: every code decodes to a sample that encodes back to
// it (but the two zeros), and the error of encoding stays within the
// segment's step.
func TestULaw(t *testing.T) {
	for c := 0; c < 256; c++ {
		s := ulawDecode(byte(c))
		if got := ulawEncode(s); got != byte(c) && !(c == 0x7f && got == 0xff) {
			t.Fatalf("code %#x -> %d -> %#x", c, s, got)
		}
	}
	for _, s := range []int16{0, 1, -1, 100, -100, 1000, 8000, -8000, 32767, -32768} {
		d := ulawDecode(ulawEncode(s))
		if diff := int(d) - int(s); diff > 1100 || diff < -1100 || (s > 200 && d <= 0) {
			t.Fatalf("%d -> %d", s, d)
		}
	}
}

// silentOgg writes an Ogg Opus file of n 20 ms CELT silence frames.
func silentOgg(t testing.TB, path string, n int) {
	w, err := oggwriter.New(path, 48000, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		p := &rtp.Packet{Header: rtp.Header{SequenceNumber: uint16(i), Timestamp: uint32(960 * i)}, Payload: []byte{0xf8, 0xff, 0xfe}}
		if err := w.WriteRTP(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOggSource(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.ogg")
	silentOgg(t, path, 50)
	s, err := openSource(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.codec.MimeType != opus.MimeType || len(s.samples) != 50 {
		t.Fatalf("%s, %d samples", s.codec.MimeType, len(s.samples))
	}
	for _, x := range s.samples {
		if x.Duration != 20*time.Millisecond || !bytes.Equal(x.Data, []byte{0xf8, 0xff, 0xfe}) {
			t.Fatalf("sample %+v", x)
		}
	}
	for _, bad := range [][]byte{nil, []byte("RIFF\x00\x00\x00\x00WAVE"), []byte("OggS"), []byte("hello")} {
		if _, err := sourceOf(bad); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
}

// Ogg Opus in, Ogg out: the peer that receives Opus records it as Ogg
// that pion's reader reads back.
func TestOggPeers(t *testing.T) {
	b := newBoard()
	path := filepath.Join(t.TempDir(), "a.ogg")
	silentOgg(t, path, 50)
	a := b.add(t, "a", Config{Send: path})
	c := b.add(t, "b", Config{Record: t.TempDir()})
	c.call.Join([]Device{a.dev})
	waitFor(t, "50 Opus packets", func() (bool, string) {
		st := c.call.Stats(context.Background())
		return len(st) == 1 && st[0].PacketsIn >= 50, ""
	})
	c.stop()
	files, _ := filepath.Glob(filepath.Join(c.dir, "*.ogg"))
	if len(files) != 1 {
		t.Fatalf("recorded %v", files)
	}
	f, err := os.Open(files[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, _, err := oggreader.NewWith(f)
	if err != nil {
		t.Fatal(err)
	}
	pages := 0
	for {
		if _, _, err := r.ParseNextPage(); err != nil {
			break
		}
		pages++
	}
	if pages < 50 {
		t.Fatalf("recorded %d pages", pages)
	}
}

// FuzzAudioFile: no input crashes the decoders; what decodes has samples
// of a sane length.
func FuzzAudioFile(f *testing.F) {
	dir := f.TempDir()
	sineWAV(f, filepath.Join(dir, "s.wav"), 0.05)
	silentOgg(f, filepath.Join(dir, "s.ogg"), 3)
	for _, n := range []string{"s.wav", "s.ogg"} {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte("RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00"))
	f.Add([]byte("OggS\x00\x02"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := sourceOf(b)
		if err != nil {
			return
		}
		if len(s.samples) == 0 {
			t.Fatal("a source without samples")
		}
		for _, x := range s.samples {
			if x.Duration <= 0 || x.Duration > 120*time.Millisecond || len(x.Data) == 0 {
				t.Fatalf("sample of %v, %d bytes", x.Duration, len(x.Data))
			}
		}
	})
}
