// Package peertest holds helpers shared by the tests of the node and of
// its peer-protocol packages (node/mediasvc, node/wire): polling with a
// deadline, raw length-prefixed frames, blobs in a media store.
//
// Only tests import it; it must not start anything, and must not import
// the node or the packages whose tests use it.
package peertest

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/media"
)

// Eventually polls cond until it holds or the deadline passes.
func Eventually(t testing.TB, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %v: %s", what, d, state)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a wait for convergence
	}
}

// FrameOf is m as one length-prefixed frame.
func FrameOf(t testing.TB, m any) []byte {
	t.Helper()
	b, err := crdt.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return append(binary.AppendUvarint(nil, uint64(len(b))), b...)
}

// Answer reads what the server sends on st until it ends the stream, and
// reports whether it reset it (rather than close it after an answer).
func Answer(t testing.TB, st network.Stream) (got []byte, reset bool) {
	t.Helper()
	var late atomic.Bool
	timer := time.AfterFunc(60*time.Second, func() { late.Store(true); st.Reset() })
	got, err := io.ReadAll(st)
	timer.Stop()
	if late.Load() {
		t.Fatal("the server neither answered nor ended the stream within 60 s")
	}
	return got, errors.Is(err, network.ErrReset)
}

// AddBlob imports size random bytes into st.
func AddBlob(t testing.TB, st media.BlobStore, size int) (media.Blob, media.FileKey, []byte) {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	key, err := media.NewFileKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blob, err := media.Import(st, bytes.NewReader(data), key)
	if err != nil {
		t.Fatal(err)
	}
	return blob, key, data
}

// ReadBlob decrypts the blob root from st.
func ReadBlob(t testing.TB, st media.BlobStore, root cid.Cid, key media.FileKey) []byte {
	t.Helper()
	r, err := media.NewReader(st, root, key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
