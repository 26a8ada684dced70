package p2p

import (
	"io"
	"log/slog"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/crdt"
)

// bookPeer is a peer of the address book tests.
const bookPeer = "12D3KooWBuUSA4FrQaRWmSYoFHJLpcgU2NNrz2QUBBCRMzRPe63t"

type memLocal map[string][]byte

func (m memLocal) PutLocal(k, v []byte) error { m[string(k)] = append([]byte(nil), v...); return nil }
func (m memLocal) GetLocal(k []byte) ([]byte, error) {
	v, ok := m[string(k)]
	if !ok {
		return nil, crdt.ErrNotFound
	}
	return v, nil
}

func TestAddrBookSaveLoad(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st := memLocal{}
	if got := loadAddrBook(st, log); len(got) != 0 {
		t.Fatalf("empty store: %v", got)
	}
	p, err := peer.Decode(bookPeer)
	if err != nil {
		t.Fatal(err)
	}
	book := map[peer.ID]addrEntry{p: {Addrs: []string{"/ip4/10.0.0.1/tcp/4001"}, Seen: 1700000000}}
	if err := save(st, book); err != nil {
		t.Fatal(err)
	}
	got := loadAddrBook(st, log)
	if len(got) != 1 || got[p].Seen != 1700000000 || got[p].Addrs[0] != "/ip4/10.0.0.1/tcp/4001" {
		t.Fatalf("loaded %v", got)
	}
	st[string(addrBookKey)] = []byte("{not json")
	if got := loadAddrBook(st, log); len(got) != 0 {
		t.Fatalf("a corrupt book loads as %v, want empty", got)
	}
	if got := firstUnique([]string{"a", "b", "a", "c", "d"}, 3); len(got) != 3 || got[2] != "c" {
		t.Fatalf("firstUnique: %v", got)
	}
}

func FuzzAddrBook(f *testing.F) {
	f.Add([]byte(`{"` + bookPeer + `":{"addrs":["/ip4/10.0.0.1/tcp/4001"],"seen":1700000000}}`))
	f.Add([]byte(`{"x":{"addrs":[1],"seen":"y"}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st := memLocal{string(addrBookKey): b}
		book := loadAddrBook(st, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err := save(st, book); err != nil {
			t.Fatal(err)
		}
		if again := loadAddrBook(st, slog.New(slog.NewTextHandler(io.Discard, nil))); len(again) != len(book) {
			t.Fatalf("save/load changed the book: %d -> %d", len(book), len(again))
		}
	})
}
