package mediasvc

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/parley-p2p/parley/crdt"
)

// TestMediaRequestBound (issue 17, item 1): a media request over
// mediaMaxRequest resets the stream unanswered.
func TestMediaRequestBound(t *testing.T) {
	mn := newMediaNet(t, 2)
	mn.link(0, 1)
	st, err := mn.hosts[1].NewStream(context.Background(), mn.hosts[0].ID(), Protocol)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Reset()
	st.Write(frameOf(t, &mediaMsg{Op: mediaOpGet, CID: make([]byte, mediaMaxRequest)}))
	if got, reset := answer(t, st); !reset || len(got) > 0 {
		t.Errorf("a request over %d octets: answer %q, reset %v; want a reset", mediaMaxRequest, got, reset)
	}
}

// frameOf is m as one length-prefixed frame.
func frameOf(t *testing.T, m any) []byte {
	t.Helper()
	b, err := crdt.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return append(binary.AppendUvarint(nil, uint64(len(b))), b...)
}

// answer reads what the server sends on st until it ends the stream, and
// reports whether it reset it (rather than close it after an answer).
func answer(t *testing.T, st network.Stream) (got []byte, reset bool) {
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
