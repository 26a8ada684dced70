// Package mediatest holds the conformance suite every media.BlobStore
// implementation passes.
package mediatest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/parley-p2p/parley/media"
)

// Factory returns a new, empty store and a function that damages one held
// block in place (flips a bit, as a bad disk would), or nil if the store
// cannot be damaged from outside.
type Factory func(t *testing.T) (store media.BlobStore, corrupt func(cid.Cid))

func block(i int, size int) ([]byte, cid.Cid) {
	b := bytes.Repeat([]byte(fmt.Sprintf("block %d;", i)), size/8+1)[:size]
	return b, media.BlockCID(cid.Raw, b)
}

// RunBlobStoreConformance checks the BlobStore contract.
func RunBlobStoreConformance(t *testing.T, newStore Factory) {
	t.Run("PutGetHas", func(t *testing.T) {
		s, _ := newStore(t)
		for i, size := range []int{0, 1, 1000, media.BlockSize} {
			data, c := block(i, size)
			if ok, err := s.Has(c); err != nil || ok {
				t.Fatalf("Has before Put = %v, %v", ok, err)
			}
			if _, err := s.Get(c); !errors.Is(err, media.ErrNotFound) {
				t.Fatalf("Get before Put: err = %v, want ErrNotFound", err)
			}
			if err := s.Put(c, data); err != nil {
				t.Fatalf("Put: %v", err)
			}
			if err := s.Put(c, data); err != nil {
				t.Fatalf("Put again: %v", err)
			}
			got, err := s.Get(c)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("Get size %d: %d octets, %v", size, len(got), err)
			}
			if ok, err := s.Has(c); err != nil || !ok {
				t.Fatalf("Has after Put = %v, %v", ok, err)
			}
		}
	})
	t.Run("Manifest codec", func(t *testing.T) {
		s, _ := newStore(t)
		data := []byte{0xa0}
		c := media.BlockCID(cid.DagCBOR, data)
		if err := s.Put(c, data); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Get(c); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("Get = %x, %v", got, err)
		}
	})
	t.Run("PutMismatch", func(t *testing.T) {
		s, _ := newStore(t)
		data, c := block(1, 100)
		if err := s.Put(c, append(bytes.Clone(data), 0)); !errors.Is(err, media.ErrMismatch) {
			t.Fatalf("Put of other data: err = %v, want ErrMismatch", err)
		}
		if ok, _ := s.Has(c); ok {
			t.Fatal("mismatched block stored")
		}
	})
	t.Run("Rejects", func(t *testing.T) {
		s, _ := newStore(t)
		big := make([]byte, media.MaxBlockSize+1)
		if err := s.Put(media.BlockCID(cid.Raw, big), big); !errors.Is(err, media.ErrTooLarge) {
			t.Errorf("oversized Put: err = %v", err)
		}
		v0, err := cid.Decode("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Put(v0, []byte("x")); !errors.Is(err, media.ErrBadCID) {
			t.Errorf("CIDv0 Put: err = %v", err)
		}
		if _, err := s.Get(v0); !errors.Is(err, media.ErrBadCID) && !errors.Is(err, media.ErrNotFound) {
			t.Errorf("CIDv0 Get: err = %v", err)
		}
	})
	t.Run("Copies", func(t *testing.T) {
		s, _ := newStore(t)
		data, c := block(2, 64)
		in := bytes.Clone(data)
		if err := s.Put(c, in); err != nil {
			t.Fatal(err)
		}
		in[0] ^= 0xff
		out, err := s.Get(c)
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("store aliases the Put slice: %v", err)
		}
		out[0] ^= 0xff
		again, err := s.Get(c)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("store aliases the Get slice: %v", err)
		}
	})
	t.Run("DeleteList", func(t *testing.T) {
		s, _ := newStore(t)
		want := map[string]bool{}
		var cids []cid.Cid
		for i := range 10 {
			data, c := block(i, 10+i)
			if err := s.Put(c, data); err != nil {
				t.Fatal(err)
			}
			want[c.KeyString()] = true
			cids = append(cids, c)
		}
		if err := s.Delete(cids[3]); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(cids[3]); err != nil {
			t.Fatalf("second Delete: %v", err)
		}
		delete(want, cids[3].KeyString())
		if _, err := s.Get(cids[3]); !errors.Is(err, media.ErrNotFound) {
			t.Fatalf("Get after Delete: %v", err)
		}
		got := map[string]bool{}
		if err := s.List(func(c cid.Cid) bool { got[c.KeyString()] = true; return true }); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("List gave %d blocks, want %d", len(got), len(want))
		}
		for k := range want {
			if !got[k] {
				t.Fatalf("List misses a block")
			}
		}
		n := 0
		if err := s.List(func(cid.Cid) bool { n++; return n < 3 }); err != nil || n != 3 {
			t.Fatalf("List did not stop: %d, %v", n, err)
		}
	})
	t.Run("CorruptOnRead", func(t *testing.T) {
		s, corrupt := newStore(t)
		if corrupt == nil {
			t.Skip("store cannot be damaged from outside")
		}
		for i, size := range []int{0, 1, 5000} {
			data, c := block(10+i, size)
			if err := s.Put(c, data); err != nil {
				t.Fatal(err)
			}
			corrupt(c)
			if _, err := s.Get(c); !errors.Is(err, media.ErrCorrupt) {
				t.Fatalf("Get of damaged block (size %d): err = %v, want ErrCorrupt", size, err)
			}
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		s, _ := newStore(t)
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 20 {
					data, c := block(i%5+g%2*100, 300)
					if err := s.Put(c, data); err != nil {
						errs <- err
						return
					}
					got, err := s.Get(c)
					if err != nil || !bytes.Equal(got, data) {
						errs <- fmt.Errorf("get: %v", err)
						return
					}
					if i%7 == 0 {
						_ = s.List(func(cid.Cid) bool { return true })
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}
