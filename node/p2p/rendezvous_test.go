package p2p

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/parley-p2p/parley/crdt"
)

// The rendezvous key is SHA-256("parley/room-rendezvous/1" ‖ 0 ‖ room id)
// as a raw CIDv1 (docs/protocol.md §9.2): the DHT sees neither the room id
// nor the room's reference on the wire.
func TestRendezvousKey(t *testing.T) {
	room := crdt.IDOf([]byte("a room"))
	k := RendezvousKey(room)
	want := sha256.Sum256(append([]byte("parley/room-rendezvous/1\x00"), room...))
	dec, err := multihash.Decode(k.Hash())
	if err != nil || k.Prefix().Codec != cid.Raw || k.Version() != 1 || dec.Code != multihash.SHA2_256 || !bytes.Equal(dec.Digest, want[:]) {
		t.Fatalf("key %s: codec %x, version %d, digest %x (err %v), want %x", k, k.Prefix().Codec, k.Version(), dec.Digest, err, want)
	}
	ref := RefOf(room)
	if bytes.Contains(k.Bytes(), []byte(room)) || bytes.Contains(k.Bytes(), ref[:]) || bytes.Equal(dec.Digest, ref[:]) {
		t.Fatal("the rendezvous key carries the room id or its reference")
	}
	if RendezvousKey(crdt.IDOf([]byte("another room"))) == k {
		t.Fatal("two rooms share a rendezvous key")
	}
}
