package e2ee

import (
	"errors"
	"testing"

	"github.com/parley-p2p/parley/crdt"
)

func TestMemKeyStore(t *testing.T) {
	r := seeded(50)
	s := NewMemKeyStore()
	other := crdt.IDOf([]byte("other room"))
	k1, _ := NewEpoch(r, testRoom)
	k2, _ := NewEpoch(r, testRoom)
	k3, _ := NewEpoch(r, other)
	for _, k := range []*EpochKey{k1, k2, k3, k1} {
		if err := s.Put(k); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.Epochs(testRoom); len(got) != 2 {
		t.Fatalf("epochs %v", got)
	}
	if got, err := s.Get(testRoom, k2.ID()); err != nil || got != k2 {
		t.Fatalf("get: %v", err)
	}
	if _, err := s.Get(other, k1.ID()); !errors.Is(err, ErrNoKey) {
		t.Fatalf("key of another room: %v", err)
	}
	if err := s.Destroy(testRoom, k1.ID()); err != nil {
		t.Fatal(err)
	}
	if !k1.Destroyed() || k1.Secret() != nil {
		t.Fatal("Destroy left the secret")
	}
	if _, err := s.Get(testRoom, k1.ID()); !errors.Is(err, ErrNoKey) {
		t.Fatalf("destroyed key still held: %v", err)
	}
	if err := s.Put(k1); !errors.Is(err, ErrNoKey) {
		t.Fatalf("stored a destroyed key: %v", err)
	}
	if err := s.DestroyRoom(testRoom); err != nil {
		t.Fatal(err)
	}
	if !k2.Destroyed() || len(s.Epochs(testRoom)) != 0 || k3.Destroyed() {
		t.Fatal("DestroyRoom destroyed the wrong keys")
	}
}
