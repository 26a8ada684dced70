package p2p

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms"
)

// The event topic's validator accepts at once what pubsub hands it as
// published by this node (from is the local peer: Serve publishes only
// events this node authored and committed), without decoding or judging
// it; the same bytes from any other peer are judged, and rejected.
func TestOwnGossipAccepted(t *testing.T) {
	self, other := peer.ID("self"), peer.ID("other")
	g := &Gossip{self: self, engine: &testEngine{}}
	v := g.validator(crdt.RoomID("room"))
	m := &pubsub.Message{Message: &pb.Message{Data: []byte("not an event frame")}}
	if res := v(context.Background(), self, m); res != pubsub.ValidationAccept {
		t.Fatalf("own message: %v, want accept without judging", res)
	}
	if res := v(context.Background(), other, m); res != pubsub.ValidationReject {
		t.Fatalf("another peer's undecodable message: %v, want reject", res)
	}
}

// nonCanonical re-encodes ev's envelope with a non-minimal integer for "v".
func nonCanonical(t *testing.T, ev *crdt.Event) []byte {
	t.Helper()
	env := bytes.Replace(ev.Envelope, []byte{0x61, 'v', 0x01}, []byte{0x61, 'v', 0x18, 0x01}, 1)
	if bytes.Equal(env, ev.Envelope) {
		t.Fatal("no version field found")
	}
	b, err := crdt.Marshal(frame{Env: env, Body: ev.Body})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type frame struct {
	_    struct{} `cbor:",toarray"`
	Env  []byte
	Body []byte
}

// A non-canonical encoding of a valid event (a second CID for it) is
// refused by the sync decoder and the gossip validator alike.
func TestNonCanonicalEventRejected(t *testing.T) {
	master, _ := crdt.GenerateKey(rand.Reader)
	ident, _ := crdt.NewIdentity(master, rand.Reader)
	rid := crdt.IDOf([]byte("a room"))
	ev, err := crdt.Sign(ident, crdt.Draft{Room: rid, Type: rooms.TypeMessage, Prev: []crdt.EventID{rid}, Auth: []crdt.EventID{rid}, Depth: 3, TS: 1, Body: rooms.Encode(rooms.MessageBody{Text: "re-encoded"})})
	if err != nil {
		t.Fatal(err)
	}
	bad := nonCanonical(t, ev)
	if _, err := crdt.Decode(bad); !errors.Is(err, crdt.ErrNonCanonical) {
		t.Fatalf("decode of re-encoded event: %v", err)
	}
	// Through the sync decoder as a peer would send it.
	if _, err := decodeParallel([][]byte{bad}); err == nil {
		t.Fatal("sync accepted a non-canonical event")
	}
	// Through gossip: the validator rejects it, so no second CID appears anywhere.
	g := &Gossip{self: "self", engine: &testEngine{}}
	if res := g.validator(rid)(context.Background(), "other", pubsubMessage(bad)); res != rejectResult {
		t.Fatalf("validator result %v", res)
	}
}

// Heads that all arrived by gossip are not announced again (the author's
// announcement carries them); heads authored or pulled are, and so are
// heads mixing both, and events the engine did not take after all.
func TestHeadsChangedSkipsGossipedHeads(t *testing.T) {
	g := NewGossip(nil, peer.ID("self"), &testEngine{}, nil, nil, nil, 1)
	room := crdt.RoomID("room")
	announced := func() bool { return len(g.heads.Take()) > 0 }
	a, b := &crdt.Event{ID: "a"}, &crdt.Event{ID: "b"}
	g.gossiped.add([]*crdt.Event{a, b})
	for _, tc := range []struct {
		heads []crdt.EventID
		want  bool
	}{
		{[]crdt.EventID{"a"}, false},
		{[]crdt.EventID{"a", "b"}, false},
		{[]crdt.EventID{"a", "c"}, true}, // c authored or pulled
		{[]crdt.EventID{"c"}, true},
		{nil, true},
	} {
		g.HeadsChanged(room, tc.heads)
		if got := announced(); got != tc.want {
			t.Errorf("heads %v: announced %v, want %v", tc.heads, got, tc.want)
		}
	}
	g.gossiped.forget([]*crdt.Event{b}) // refused by the engine: b comes again by sync
	if g.HeadsChanged(room, []crdt.EventID{"b"}); !announced() {
		t.Error("heads of an event the engine refused from gossip: not announced")
	}
	// Only the last gossipedSize events are remembered.
	for i := range gossipedSize {
		g.gossiped.add([]*crdt.Event{{ID: crdt.EventID(fmt.Sprint("x", i))}})
	}
	if g.HeadsChanged(room, []crdt.EventID{"a"}); !announced() {
		t.Error("heads of an event gossiped long ago: not announced")
	}
	if g.HeadsChanged(room, []crdt.EventID{"x1023"}); announced() {
		t.Error("heads of the last gossiped event: announced")
	}
}

// Heads made of events this node published count as gossiped: the
// event's flood replaces the author's announcement, on change and in the
// periodic round alike (docs/protocol.md 2).
func TestOwnPublishedHeadsNotAnnounced(t *testing.T) {
	g := NewGossip(nil, peer.ID("self"), &testEngine{}, nil, nil, nil, 1)
	room := crdt.RoomID("room")
	announced := func() bool { return len(g.heads.Take()) > 0 }
	g.gossiped.add([]*crdt.Event{{ID: "a"}})
	g.Publish(&crdt.Event{ID: "own", Room: room})
	for _, tc := range []struct {
		heads []crdt.EventID
		want  bool
	}{
		{[]crdt.EventID{"own"}, false},
		{[]crdt.EventID{"a", "own"}, false},
		{[]crdt.EventID{"own", "pulled"}, true},
	} {
		g.HeadsChanged(room, tc.heads)
		if got := announced(); got != tc.want {
			t.Errorf("heads %v: announced %v, want %v", tc.heads, got, tc.want)
		}
	}
	// The round's announcement stops before it reaches the (absent)
	// heads topic when the engine's heads are all gossiped.
	e := &testEngine{}
	e.keep(room)
	g = NewGossip(nil, peer.ID("self"), e, nil, nil, nil, 1)
	g.Publish(&crdt.Event{ID: crdt.EventID(room), Room: room})
	g.announce(context.Background(), room, &roomTopics{})
}

// Periodic rounds fall on whole seconds, 30 s ± 30 % from now (rounded up).
func TestNextRoundOnWholeSeconds(t *testing.T) {
	g := NewGossip(nil, peer.ID("self"), &testEngine{}, nil, nil, nil, 7)
	now := time.Date(2026, 12, 7, 22, 0, 0, 123456789, time.UTC)
	for range 1000 {
		next := g.nextRound(now)
		if next.Nanosecond() != 0 {
			t.Fatalf("round at %v: not on a whole second", next)
		}
		if d := next.Sub(now); d < 21*time.Second || d > 40*time.Second {
			t.Fatalf("round %v after now, want 21-40 s", d)
		}
	}
}
