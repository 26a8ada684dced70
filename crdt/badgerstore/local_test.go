package badgerstore

import (
	"errors"
	"testing"

	"github.com/parley-p2p/parley/crdt"
)

// The node-local key space: values round-trip, a scan sees its prefix
// only, a delete is final, and local values never show as rooms.
func TestLocalValues(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, kv := range [][2]string{{"k/a", "1"}, {"k/b", "2"}, {"p/x", "plain"}} {
		if err := s.PutLocal([]byte(kv[0]), []byte(kv[1])); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := s.GetLocal([]byte("p/x")); err != nil || string(v) != "plain" {
		t.Fatalf("get: %q %v", v, err)
	}
	var keys []string
	s.ScanLocal([]byte("k/"), func(k, v []byte) bool { keys = append(keys, string(k)+"="+string(v)); return true })
	if len(keys) != 2 || keys[0] != "k/a=1" || keys[1] != "k/b=2" {
		t.Fatalf("scan: %v", keys)
	}
	if err := s.DeleteLocal([]byte("p/x")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteLocal([]byte("p/absent")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetLocal([]byte("p/x")); !errors.Is(err, crdt.ErrNotFound) {
		t.Fatalf("deleted value: %v", err)
	}
	if rs, err := s.Rooms(); err != nil || len(rs) != 0 {
		t.Fatalf("rooms: %v %v", rs, err)
	}
}
