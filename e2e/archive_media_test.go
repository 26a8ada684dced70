package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/parley-p2p/parley/api"
)

// TestArchiveWithMedia: a room with a sent image and an imported Telegram
// chat (with its photo), exported with its media and imported on a fresh
// node that talks to nobody: that node lists the same messages and opens
// every image from its own store, byte for byte. Exported with --no-media,
// the archive carries no blob.
func TestArchiveWithMedia(t *testing.T) {
	t.Parallel()
	a := startDaemon(t, "A")
	var rr api.RoomResp
	a.must(&rr, "room", "create", "--public", "--name", "album")
	png, err := os.ReadFile(filepath.Join(fixtures, "discord/general.json_Files/sunset-5A3F1.png"))
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "sunset.png")
	if err := os.WriteFile(img, png, 0o600); err != nil {
		t.Fatal(err)
	}
	a.must(nil, "send-file", rr.Room, img)
	a.must(nil, "import", "--from", "telegram", filepath.Join(fixtures, "telegram"), "--room", rr.Room)

	file := filepath.Join(t.TempDir(), "album.car")
	var ex api.ExportResp
	a.must(&ex, "export", rr.Room, "-o", file)
	if ex.Blobs != 4 { // two images, each with its thumbnail
		t.Fatalf("export answered %+v, want 4 blobs", ex)
	}
	bare := filepath.Join(t.TempDir(), "bare.car")
	var exBare api.ExportResp
	a.must(&exBare, "export", rr.Room, "-o", bare, "--no-media")
	if exBare.Blobs != 0 || exBare.Events != ex.Events {
		t.Fatalf("export --no-media answered %+v", exBare)
	}

	b := startDaemon(t, "B") // fresh, connected to nobody
	var im api.ImportResp
	b.must(&im, "import", file)
	if im.New != ex.Events || im.Blocks == 0 {
		t.Fatalf("import answered %+v", im)
	}
	hist, err := b.history(rr.Room)
	if err != nil {
		t.Fatal(err)
	}
	images := 0
	for _, e := range hist {
		if e.Media == nil {
			continue
		}
		images++
		out := filepath.Join(t.TempDir(), "img.png")
		b.must(nil, "media", "get", e.Media.CID+"#"+e.Media.Key, "-o", out)
		if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, png) {
			t.Fatalf("image %s does not open offline as the original: %v", e.Media.CID, err)
		}
		if e.Media.ThumbnailCID != "" {
			b.must(nil, "media", "get", e.Media.ThumbnailCID+"#"+e.Media.ThumbnailKey, "-o", filepath.Join(t.TempDir(), "thumb.jpg"))
		}
	}
	if images != 2 {
		t.Fatalf("B lists %d images, want 2", images)
	}
}
