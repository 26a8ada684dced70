package p2p

import (
	"bytes"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	lprecord "github.com/libp2p/go-libp2p/core/record"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-p2p/parley/crdt"
)

// signedRecord is a fresh peer's signed record listing addr, marshalled.
func signedRecord(t testing.TB, addr string) (peer.ID, []byte) {
	t.Helper()
	sk, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	rec := peer.PeerRecordFromAddrInfo(peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{ma.StringCast(addr)}})
	env, err := lprecord.Seal(rec, sk)
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return id, b
}

func recordsFrame(t testing.TB, recs ...[]byte) []byte {
	t.Helper()
	b, err := crdt.Marshal(peerRecordsMsg{Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// An answer keeps only records that verify under their signer's key, of
// peers other than the answering one; an answer over the bounds is refused.
func TestDecodePeerRecords(t *testing.T) {
	q, good := signedRecord(t, "/ip4/11.77.1.2/tcp/4001")
	from, own := signedRecord(t, "/ip4/11.77.2.2/tcp/4001")
	forged := bytes.Clone(good)
	forged[len(forged)-1] ^= 1 // the signature no longer verifies
	_, big := signedRecord(t, "/dns4/"+string(bytes.Repeat([]byte("x"), 200))+"/tcp/1")
	envs, err := decodePeerRecords(recordsFrame(t, good, own, forged, []byte("junk"), bytes.Repeat(big, maxPeerRecordBytes/len(big)+1)), from)
	if err != nil {
		t.Fatal(err)
	}
	if len(envs) != 1 {
		t.Fatalf("kept %d records, want 1", len(envs))
	}
	rec, err := envs[0].Record()
	if err != nil || rec.(*peer.PeerRecord).PeerID != q {
		t.Fatalf("kept the record of %v (%v), want %s", rec, err, q)
	}
	many := make([][]byte, maxPeerRecords+1)
	for i := range many {
		many[i] = good
	}
	if _, err := decodePeerRecords(recordsFrame(t, many...), from); err == nil {
		t.Fatalf("an answer of %d records was taken", len(many))
	}
	if _, err := decodePeerRecords([]byte{0xff}, from); err == nil {
		t.Fatal("a frame that is not CBOR was taken")
	}
}

// FuzzPeerRecords feeds arbitrary answers to the decoder: it never
// crashes, and whatever it keeps verifies and is not the sender's.
func FuzzPeerRecords(f *testing.F) {
	from, own := signedRecord(f, "/ip4/11.77.2.2/tcp/4001")
	_, good := signedRecord(f, "/ip4/11.77.1.2/tcp/4001")
	f.Add(recordsFrame(f, good, own))
	f.Add(recordsFrame(f))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		envs, err := decodePeerRecords(b, from)
		if err != nil && envs != nil {
			t.Fatal("records kept from a refused answer")
		}
		if len(envs) > maxPeerRecords {
			t.Fatalf("%d records kept", len(envs))
		}
		for _, env := range envs {
			rec, err := env.Record()
			if err != nil {
				t.Fatal(err)
			}
			if rec.(*peer.PeerRecord).PeerID == from {
				t.Fatal("kept the sender's own record")
			}
		}
	})
}
