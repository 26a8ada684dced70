package archive

import (
	"bytes"
	"errors"
	"testing"
)

// TestMediaRoundTrip: media blocks written with the events come back in
// order, each once; a flipped byte in one, or a missing one, refuses the
// whole archive.
func TestMediaRoundTrip(t *testing.T) {
	r, evs := room(t, 1, 5)
	big := bytes.Repeat([]byte{7}, 100_000) // larger than an event block
	ms := []Block{
		{CID: []byte(cidOf(prefixDagCBOR, []byte{0xa0})), Data: []byte{0xa0}},
		{CID: []byte(cidOf(prefixRaw, big)), Data: big},
	}
	var buf bytes.Buffer
	if err := WriteMedia(&buf, r, evs, append(ms, ms[1])); err != nil {
		t.Fatal(err)
	}
	a, err := Read(bytes.NewReader(buf.Bytes()), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	sameEvents(t, a.Events, evs)
	if len(a.Media) != 2 || !bytes.Equal(a.Media[0].CID, ms[0].CID) || !bytes.Equal(a.Media[1].Data, big) {
		t.Fatalf("media: got %d blocks", len(a.Media))
	}
	b := buf.Bytes()
	bad := bytes.Clone(b)
	bad[len(bad)-1] ^= 1 // the last byte of the big block
	if _, err := Read(bytes.NewReader(bad), DefaultLimits); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a tampered media block: %v", err)
	}
	short := b[:len(b)-len(big)-cidLen-3] // drop the big block with its length
	if _, err := Read(bytes.NewReader(short), DefaultLimits); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a missing media block: %v", err)
	}
	if err := WriteMedia(&buf, r, evs, []Block{{CID: ms[0].CID, Data: []byte{1}}}); err == nil {
		t.Fatal("a media block that does not match its CID was written")
	}
}
