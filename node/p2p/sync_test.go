package p2p

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/internal/peertest"
)

// fakeIDs is n well-formed event ids (36 octets each).
func fakeIDs(rid crdt.RoomID, n int) [][]byte {
	ids := make([][]byte, n)
	for i := range ids {
		id := []byte(rid)
		id[len(id)-1] ^= byte(i)
		ids[i] = id
	}
	return ids
}

// TestSyncFrameBounds (issue 17, item 1): a served sync stream takes a
// first frame of at most syncSmallFrame, then each request within its op's
// bound; a frame over the bound resets the stream without an answer.
func TestSyncFrameBounds(t *testing.T) {
	tn := newTestNet(t, 2)
	rid := tn.room(0, "public")
	ident := tn.peers[1].ident
	server := tn.peers[0].host.ID()
	client := tn.peers[1].host
	// The client proves the room first (docs/protocol.md 2.1): an unproven
	// peer is answered with an error and never authorized.
	if err := tn.peers[1].gate.Ensure(tn.ctx, server, rid); err != nil {
		t.Fatal(err)
	}
	ref := RefOf(rid)
	hello := &syncMsg{Op: opHeads, Room: ref[:], User: ident.User[:], Cert: ident.Cert}
	open := func() network.Stream {
		st, err := client.NewStream(tn.ctx, server, SyncProtocol)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Reset() })
		return st
	}

	// A first frame over syncSmallFrame: reset, unanswered.
	big := *hello
	big.IDs = fakeIDs(rid, syncSmallFrame/36+1)
	st := open()
	st.Write(peertest.FrameOf(t, &big))
	if got, reset := peertest.Answer(t, st); !reset || len(got) > 0 {
		t.Errorf("a first frame of %d octets: answer %q, reset %v; want a reset", len(peertest.FrameOf(t, &big)), got, reset)
	}

	// Authorized: a get of maxGetIDs ids (over syncSmallFrame) is served...
	st = open()
	get := &syncMsg{Op: opGet, Room: ref[:], IDs: fakeIDs(rid, maxGetIDs)}
	if n := len(peertest.FrameOf(t, get)); n <= syncSmallFrame || n > syncGetFrame {
		t.Fatalf("a get of %d ids is %d octets; the test wants it between the bounds", maxGetIDs, n)
	}
	st.Write(append(peertest.FrameOf(t, hello), peertest.FrameOf(t, get)...))
	st.CloseWrite()
	got, reset := peertest.Answer(t, st)
	if reset || len(got) == 0 {
		t.Fatalf("heads then a get of %d ids: answer of %d octets, reset %v", maxGetIDs, len(got), reset)
	}
	// ... but a since over syncSmallFrame resets the stream.
	st = open()
	since := &syncMsg{Op: opSince, Room: ref[:], IDs: fakeIDs(rid, syncSmallFrame/36+1)}
	st.Write(append(peertest.FrameOf(t, hello), peertest.FrameOf(t, since)...))
	if got, reset = peertest.Answer(t, st); !reset {
		t.Errorf("a since of %d octets after heads: answer %q, no reset", len(peertest.FrameOf(t, since)), got)
	}
}
