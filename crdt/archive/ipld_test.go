package archive

import (
	"bytes"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/ipld/go-ipld-prime/codec/dagcbor"
	"github.com/ipld/go-ipld-prime/datamodel"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/ipld/go-ipld-prime/node/basicnode"
)

// TestIPLDReadsIt checks the archive with an independent IPLD implementation
// (go-ipld-prime): the header and every dag-cbor block decode as DAG-CBOR and
// re-encode to the same bytes, the root is the room, every section's CID
// (parsed by go-cid) hashes to its data, and the index's links point at
// blocks of the file.
func TestIPLDReadsIt(t *testing.T) {
	r, evs := room(t, 1, 12)
	secs := sections(t, write(t, r, evs))

	hdr := decodeDagCBOR(t, secs[0])
	roots, err := hdr.LookupByString("roots")
	if err != nil {
		t.Fatal(err)
	}
	root, _ := roots.LookupByIndex(0)
	rl, err := root.AsLink()
	if err != nil {
		t.Fatal(err)
	}
	if rl.(cidlink.Link).Cid.KeyString() != string(r) {
		t.Fatalf("root %s, want the room %s", rl, r)
	}
	if v, _ := hdr.LookupByString("version"); v == nil {
		t.Fatal("header without version")
	}

	held := map[string]bool{}
	var index []byte
	for i, s := range secs[1:] {
		n, c, err := cid.CidFromBytes(s)
		if err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
		want, err := c.Prefix().Sum(s[n:])
		if err != nil || !want.Equals(c) {
			t.Fatalf("block %d: CID %s does not match its data (%v)", i, c, err)
		}
		held[c.KeyString()] = true
		if c.Type() == cid.DagCBOR {
			decodeDagCBOR(t, s[n:])
		}
		if i == 0 {
			index = s[n:]
		}
	}
	events, err := decodeDagCBOR(t, index).LookupByString("events")
	if err != nil {
		t.Fatal(err)
	}
	if events.Length() != int64(len(evs)) {
		t.Fatalf("index lists %d events, want %d", events.Length(), len(evs))
	}
	for it := events.ListIterator(); !it.Done(); {
		_, pair, _ := it.Next()
		for j := range int64(2) {
			v, _ := pair.LookupByIndex(j)
			if v.IsNull() {
				continue
			}
			l, err := v.AsLink()
			if err != nil {
				t.Fatal(err)
			}
			if !held[l.(cidlink.Link).Cid.KeyString()] {
				t.Fatalf("index links to %s, which is not in the file", l)
			}
		}
	}
}

func decodeDagCBOR(t *testing.T, b []byte) datamodel.Node {
	t.Helper()
	nb := basicnode.Prototype.Any.NewBuilder()
	if err := dagcbor.Decode(nb, bytes.NewReader(b)); err != nil {
		t.Fatalf("go-ipld-prime cannot decode a block as DAG-CBOR: %v", err)
	}
	n := nb.Build()
	var again bytes.Buffer
	if err := dagcbor.Encode(n, &again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), b) {
		t.Fatalf("go-ipld-prime re-encodes a block differently:\n got %x\nwant %x", again.Bytes(), b)
	}
	return n
}
