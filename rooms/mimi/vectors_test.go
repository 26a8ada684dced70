package mimi

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type vector struct {
	name string
	cbor []byte
	id   string
}

// loadVectors reads testdata/draft: the .cbor bytes of every example of
// draft-ietf-mimi-content-08/-09 (the bytes of the draft repository's .cbor
// files, docs/design.md §7, not the two stale hex dumps of §5.2/§5.3 of the draft) and the
// analyst's vectors X1-X3 (§5.6), with their message IDs.
func loadVectors(t testing.TB) []vector {
	t.Helper()
	ids, err := os.ReadFile(filepath.Join("testdata", "draft", "ids.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	for _, line := range strings.Split(string(ids), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 || strings.HasPrefix(line, "#") {
			continue
		}
		h, err := os.ReadFile(filepath.Join("testdata", "draft", f[0]+".hex"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := hex.DecodeString(strings.TrimSpace(string(h)))
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, vector{f[0], b, f[1]})
	}
	if len(vs) != 17 {
		t.Fatalf("loaded %d vectors, want 14 draft + 3 analyst", len(vs))
	}
	return vs
}

// Spec: draft-ietf-mimi-content §5, Appendix B; §3.3 (message ID).
func TestDraftVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.name, func(t *testing.T) {
			id, c, err := MessageIDOf(v.cbor)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if id.String() != v.id {
				t.Errorf("message id %s, want %s", id, v.id)
			}
			again, id2, err := c.Marshal()
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if !bytes.Equal(again, v.cbor) {
				t.Errorf("re-encoding differs:\n got %x\nwant %x", again, v.cbor)
			}
			if id2 != id {
				t.Errorf("Marshal id %s, want %s", id2, id)
			}
		})
	}
}

func vectorByName(t *testing.T, name string) *Content {
	t.Helper()
	for _, v := range loadVectors(t) {
		if v.name == name {
			c, err := Decode(v.cbor)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
	}
	t.Fatalf("no vector %s", name)
	return nil
}

func mustID(t *testing.T, s string) MessageID {
	t.Helper()
	id, err := ParseMessageID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// The fields the examples carry decode to what the EDN says.
func TestDraftVectorFields(t *testing.T) {
	original := mustID(t, "017ce54837404c3696e0c747b985cb172716d0ed0a3d249ca63ace7d82a096f4")
	reply := mustID(t, "015354973c2b65ca937bf1e035ae53a5ab80e947afa43d46920d4202e5cc0b27")

	c := vectorByName(t, "edit")
	if c.Replaces == nil || *c.Replaces != reply || c.InReplyTo == nil || *c.InReplyTo != original {
		t.Errorf("edit: replaces %v inReplyTo %v", c.Replaces, c.InReplyTo)
	}
	if c.SenderURI() != "mimi://example.com/u/bob-jones" || c.RoomURI() != "mimi://example.com/r/engineering_team" {
		t.Errorf("edit: uris %q %q", c.SenderURI(), c.RoomURI())
	}
	c = vectorByName(t, "unlike")
	if c.Body.Disposition != Reaction || c.Body.Cardinality != NullPart {
		t.Errorf("unlike body %+v", c.Body)
	}
	c = vectorByName(t, "expiring")
	if c.Expires == nil || c.Expires.Relative || c.Expires.Time != 1644390004 {
		t.Errorf("expiring: %+v", c.Expires)
	}
	c = vectorByName(t, "attachment")
	x := c.Body.External
	if c.Body.Cardinality != ExternalPart || c.Body.ContentType != "video/mp4" || x == nil ||
		x.Size != 708234961 || x.EncAlg != EncAlgAES128GCM || len(x.Key) != 16 || len(x.Nonce) != 12 ||
		x.HashAlg != HashAlgSHA256 || x.Filename != "bigfile.mp4" || c.Body.Language != "en" {
		t.Errorf("attachment: %+v %+v", c.Body, x)
	}
	c = vectorByName(t, "conferencing")
	if string(c.TopicID) != "Foo 118" || c.Body.Disposition != Session {
		t.Errorf("conferencing: topic %q", c.TopicID)
	}
	c = vectorByName(t, "multipart-3")
	var idx []string
	c.Body.Walk(func(i int, p *Part) bool {
		idx = append(idx, p.ContentType+"/"+p.Language)
		return true
	})
	if len(idx) != 11 || idx[5] != "image/gif/" || idx[10] != "image/png/" || idx[9] != "text/html;charset=utf-8/fr" {
		t.Errorf("multipart-3 part indexes: %q", idx)
	}
	if p := c.Body.PartByIndex(10); p == nil || p.Disposition != Inline {
		t.Errorf("PartByIndex(10) = %+v", p)
	}
}

// The draft's printed hex for §5.2 and §5.3 carries the -07 ID of the
// original in inReplyTo; decoded as printed, those messages hash to the IDs
// the note computed, not to the ones in their EDN headers (note §5.3).
func TestStaleDumpsAndOldAlgorithm(t *testing.T) {
	newID, _ := hex.DecodeString("017ce54837404c3696e0c747b985cb172716d0ed0a3d249ca63ace7d82a096f4")
	oldID, _ := hex.DecodeString("01b0084467273cc43d6f0ebeac13eb84229c4fffe8f6c3594c905f47779e5a79")
	want := map[string]string{
		"reply":    "01ff0c6ceb4ccf83fe99419813d45d8169b39c6d863d2ec8c8e12c0a5bfbb5ea",
		"reaction": "0145131dd5f86201560e3564aa726cfbf2e7ecf74971f53013c421ad8aa7ee61",
	}
	for _, v := range loadVectors(t) {
		w, ok := want[v.name]
		if !ok {
			continue
		}
		stale := bytes.Replace(v.cbor, newID, oldID, 1)
		id, _, err := MessageIDOf(stale)
		if err != nil {
			t.Fatal(err)
		}
		if id.String() != w {
			t.Errorf("%s as printed: id %s, want %s", v.name, id, w)
		}
	}
	// The original's -07 ID (no length prefixes) must not be what we compute.
	c := vectorByName(t, "original")
	_, id, _ := c.Marshal()
	if bytes.Equal(id[:], oldID) {
		t.Error("computed the pre-08 message id")
	}
}

// Note §5.6 X4: the extension map uses bytewise key order, not length-first.
func TestExtensionKeyOrder(t *testing.T) {
	c := vectorByName(t, "original")
	c.Extensions[IntKey(24)] = []byte{0x00}
	c.Extensions[IntKey(-1)] = []byte{0x00}
	b, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	// keys 1, 2, 24, -1: 01 < 02 < 1818 < 20
	i24 := bytes.Index(b, []byte{0x18, 0x18, 0x00, 0x20, 0x00})
	if i24 < 0 {
		t.Fatalf("keys 24 and -1 not in bytewise order: %x", b)
	}
	if _, err := Decode(b); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(b, []byte{0x18, 0x18, 0x00, 0x20, 0x00}, []byte{0x20, 0x00, 0x18, 0x18, 0x00}, 1)
	if _, err := Decode(bad); err == nil {
		t.Error("accepted length-first key order")
	}
}
