package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/media"
	"github.com/parley-p2p/parley/node/mediasvc"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/rooms/e2ee"
	"github.com/parley-p2p/parley/rooms/mimi"
)

// The end-to-end encryption tests of docs/design.md §5.6 (C15-C29) on
// engines joined by a bus that delivers published events in a random order
// (seeded; the seed is printed on failure), with duplicates. Every
// plaintext carries a unique marker, and every byte each node persisted
// (its event store and its local store) is searched for it.

// bus connects engines: what one publishes, the others receive in a
// random order chosen by rng; sync copies whole stores.
type bus struct {
	t       testing.TB
	seed    uint64
	rng     *mrand.Rand
	ctx     context.Context
	engines []*Engine
	stores  []*crdt.MemStore
	locals  []*MemLocal
	idents  []*crdt.Identity
	cancels []context.CancelFunc
	masters []*crdt.SecretKey
	cut     map[[2]int]bool
	policy  e2ee.RotationPolicy
	now     func() time.Time

	mu    sync.Mutex
	queue []delivery // guarded by mu
	wg    sync.WaitGroup

	hold func(delivery) bool // deliveries drain keeps back in held (not across a cut: one way only)
	held []delivery
}

type delivery struct {
	to int
	ev *crdt.Event
}

func newBus(t testing.TB, seed uint64, n int) *bus {
	b := &bus{t: t, seed: seed, rng: mrand.New(mrand.NewPCG(seed, 7)), ctx: context.Background(), cut: map[[2]int]bool{}}
	t.Cleanup(b.close)
	for range n {
		master, _ := crdt.GenerateKey(rand.Reader)
		id, _ := crdt.NewIdentity(master, rand.Reader)
		b.masters = append(b.masters, master)
		b.add(id)
	}
	return b
}

// device adds an engine for a new device of user i's identity.
func (b *bus) device(of int) int {
	master := b.masters[of]
	id, _ := crdt.NewIdentity(master, rand.Reader)
	return b.add(id)
}

func (b *bus) add(id *crdt.Identity) int {
	i := len(b.engines)
	b.idents = append(b.idents, id)
	b.stores = append(b.stores, crdt.NewMemStore())
	b.locals = append(b.locals, NewMemLocal())
	b.engines = append(b.engines, nil)
	b.cancels = append(b.cancels, nil)
	b.start(i)
	return i
}

// start (re)starts engine i on its stores.
func (b *bus) start(i int) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	e, err := NewEngineWith(b.idents[i], b.stores[i], "", quiet, KeyOptions{Local: b.locals[i], Policy: b.policy, Seed: b.seed + uint64(i)})
	if err != nil {
		b.t.Fatalf("seed %d: engine %d: %v", b.seed, i, err)
	}
	if b.now != nil {
		e.now = b.now
	}
	e.SetEffects(Effects{Publish: func(_ crdt.RoomID, ev *crdt.Event) {
		b.mu.Lock()
		defer b.mu.Unlock()
		for j := range b.engines {
			if j != i {
				b.queue = append(b.queue, delivery{j, ev})
			}
		}
	}})
	ctx, cancel := context.WithCancel(b.ctx)
	b.engines[i], b.cancels[i] = e, cancel
	b.wg.Add(2)
	go func() { defer b.wg.Done(); e.Serve(ctx) }()
	go func() { defer b.wg.Done(); e.ServeIndex(ctx) }()
}

func (b *bus) stop(i int) { b.cancels[i]() }

func (b *bus) close() {
	for _, c := range b.cancels {
		c()
	}
	b.wg.Wait()
}

// drain delivers queued events in a random order (10 % delivered twice)
// until the queue is empty; deliveries across a cut are dropped (sync
// repairs them on heal).
func (b *bus) drain() {
	for {
		b.mu.Lock()
		if len(b.queue) == 0 {
			b.mu.Unlock()
			return
		}
		k := b.rng.IntN(len(b.queue))
		d := b.queue[k]
		b.queue[k] = b.queue[len(b.queue)-1]
		b.queue = b.queue[:len(b.queue)-1]
		if b.rng.IntN(10) == 0 {
			b.queue = append(b.queue, d)
		}
		b.mu.Unlock()
		if b.cutBetween(d.to, d.ev) {
			continue
		}
		if b.hold != nil && b.hold(d) {
			b.held = append(b.held, d)
			continue
		}
		if err := b.engines[d.to].Ingest(b.ctx, "", []*crdt.Event{d.ev}); err != nil && err != ErrClosed {
			b.t.Fatalf("seed %d: ingest on %d: %v", b.seed, d.to, err)
		}
	}
}

// cutBetween reports whether ev's author's engine is cut from engine to.
func (b *bus) cutBetween(to int, ev *crdt.Event) bool {
	for i, id := range b.idents {
		if id.Device.Public() == ev.Device {
			return b.cut[[2]int{min(i, to), max(i, to)}]
		}
	}
	return false
}

// sync gives engine to every event the others hold of room (anti-entropy),
// in a random order.
func (b *bus) sync(to int, room crdt.RoomID) {
	for i, s := range b.stores {
		if i == to || b.cut[[2]int{min(i, to), max(i, to)}] {
			continue
		}
		s.Scan(room, 0, func(st crdt.Stored) bool {
			b.mu.Lock()
			b.queue = append(b.queue, delivery{to, st.Event})
			b.mu.Unlock()
			return true
		})
	}
	b.drain()
}

func (b *bus) user(i int) string { return b.idents[i].User.String() }

// ok fails the test with the seed on error.
func (b *bus) ok(err error) {
	b.t.Helper()
	if err != nil {
		b.t.Fatalf("seed %d: %v", b.seed, err)
	}
}

// join makes engine i a member: it tracks the room, syncs and joins.
func (b *bus) join(i int, room string) {
	b.t.Helper()
	id, err := b.engines[i].TrackRoom(b.ctx, room)
	b.ok(err)
	b.sync(i, id)
	_, err = b.engines[i].Join(b.ctx, id)
	b.ok(err)
	b.drain()
}

func (b *bus) send(i int, room, text string) string {
	b.t.Helper()
	r, err := b.engines[i].Send(b.ctx, api.SendReq{Room: room, Text: text})
	b.ok(err)
	return r.Event
}

// texts returns what engine i shows of the room's messages: the bodies it
// decrypted and the count it could not.
func (b *bus) texts(i int, room string) (shown []string, undecrypted int) {
	h, err := b.engines[i].History(b.ctx, api.HistoryReq{Room: room})
	b.ok(err)
	for _, ev := range h.Events {
		if ev.Type != rooms.TypeMessage {
			continue
		}
		if ev.Decrypted {
			shown = append(shown, ev.Body)
		} else {
			undecrypted++
			if ev.Body != "" {
				b.t.Fatalf("seed %d: engine %d shows text of an undecrypted event", b.seed, i)
			}
		}
	}
	return shown, undecrypted
}

// persisted reports whether marker occurs in any byte engine i persisted.
func (b *bus) persisted(i int, marker string) bool {
	m := []byte(marker)
	found := false
	rs, _ := b.stores[i].Rooms()
	for _, r := range rs {
		b.stores[i].Scan(r, 0, func(st crdt.Stored) bool {
			found = found || bytes.Contains(st.Event.Envelope, m) || bytes.Contains(st.Event.Body, m)
			return !found
		})
	}
	b.locals[i].Each(func(k, v []byte) { found = found || bytes.Contains(k, m) || bytes.Contains(v, m) })
	return found
}

// count counts the accepted events of a type in engine i's copy.
func (b *bus) count(i int, room crdt.RoomID, typ string) int {
	n := 0
	b.stores[i].Scan(room, 0, func(st crdt.Stored) bool {
		if st.Event.Type == typ {
			n++
		}
		return true
	})
	return n
}

// keyHashes checks that every listed engine computes the same room state,
// timeline and key state (member devices, admissible epochs).
func (b *bus) converged(room crdt.RoomID, which ...int) {
	b.t.Helper()
	var first string
	for _, i := range which {
		var h string
		b.engines[i].do(b.ctx, func() error {
			r := b.engines[i].rooms[room].room
			h = fmt.Sprintf("%x %x %s", r.StateHash(), r.VisibleHash(), r.KeyStateHash())
			return nil
		})
		if first == "" {
			first = h
		} else if h != first {
			b.t.Fatalf("seed %d: engine %d diverged", b.seed, i)
		}
	}
}

// ok2 fails the test with the seed on error, ignoring a result.
func (b *bus) ok2(_ any, err error) {
	b.t.Helper()
	b.ok(err)
}

// seeds are the random-delivery seeds of the C tests (research §8 asks for
// at least 100): 100 in a full run, 5 under -short.
func seeds(t testing.TB) []uint64 {
	n := 100
	if testing.Short() {
		n = 5
	}
	s := make([]uint64, n)
	for i := range s {
		s[i] = uint64(i + 1)
	}
	return s
}

func marker(seed uint64, what string) string {
	return fmt.Sprintf("PLAINTEXT-MARKER-%d-%s", seed, what)
}

// newRoom has engine 0 create an encrypted room and the others join it.
func (b *bus) newRoom(history string, members ...int) (string, crdt.RoomID) {
	r, err := b.engines[0].CreateRoom(b.ctx, api.RoomCreateReq{Name: "secret room", History: history})
	b.ok(err)
	b.drain()
	for _, m := range members {
		b.ok2(b.engines[0].Invite(b.ctx, api.RoomUserReq{Room: r.Room, User: b.user(m)}))
		b.drain()
		b.join(m, r.Room)
	}
	id, _ := crdt.ParseID(r.Room)
	return r.Room, id
}

// C15: a kicked member keeps receiving every event but reads nothing sent
// after the kick, and no such plaintext reaches its store.
func TestE2EEKickedMemberCannotRead(t *testing.T) {
	for _, seed := range seeds(t) {
		b := newBus(t, seed, 3)
		room, id := b.newRoom(rooms.HistoryShared, 1, 2)
		pre := marker(seed, "pre")
		b.send(0, room, pre)
		b.drain()
		b.ok2(b.engines[0].Kick(b.ctx, api.RoomUserReq{Room: room, User: b.user(2)}))
		b.drain() // the senders have seen the kick (concurrent posts may use the old epoch: §5.12)
		var post []string
		for k := range 10 {
			post = append(post, marker(seed, fmt.Sprintf("post%d", k)))
			b.send(k%2, room, post[k])
			if b.rng.IntN(2) == 0 {
				b.drain()
			}
		}
		b.drain()
		for _, i := range []int{0, 1} {
			shown, undec := b.texts(i, room)
			if len(shown) != 11 || undec != 0 {
				t.Fatalf("seed %d: member %d shows %d messages, %d undecrypted", seed, i, len(shown), undec)
			}
		}
		shown, undec := b.texts(2, room)
		if len(shown) != 1 || shown[0] != pre || undec != 10 {
			t.Fatalf("seed %d: kicked member shows %v and %d undecrypted, want only the pre-kick message", seed, shown, undec)
		}
		for _, m := range post {
			if b.persisted(2, m) {
				t.Fatalf("seed %d: kicked member persisted %s", seed, m)
			}
			if !b.persisted(0, m) {
				t.Fatalf("seed %d: the marker search finds nothing on a member (%s)", seed, m)
			}
		}
		b.converged(id, 0, 1, 2)
	}
}

// C24, C28: after a leave the next sender rotates first; the leaver never
// authors the new epoch and cannot read; k concurrent senders make at most
// k rotations.
func TestE2EELeaveRotatesLazily(t *testing.T) {
	for _, seed := range seeds(t) {
		b := newBus(t, seed, 4)
		room, id := b.newRoom(rooms.HistoryShared, 1, 2, 3)
		before := b.count(0, id, rooms.TypeRotate)
		b.ok2(b.engines[3].Leave(b.ctx, api.RoomReq{Room: room}))
		b.drain()
		// three senders, concurrently (no delivery between their sends)
		var ms []string
		for i := range 3 {
			ms = append(ms, marker(seed, fmt.Sprintf("after-leave-%d", i)))
			b.send(i, room, ms[i])
		}
		b.drain()
		rot := b.count(0, id, rooms.TypeRotate) - before
		if rot < 1 || rot > 3 {
			t.Fatalf("seed %d: %d rotations after a leave with 3 concurrent senders, want 1..3", seed, rot)
		}
		b.stores[0].Scan(id, 0, func(st crdt.Stored) bool {
			if st.Event.Type == rooms.TypeRotate && st.Event.Device == b.idents[3].Device.Public() && st.Event.Depth > 8 {
				t.Errorf("seed %d: the leaver authored a rotation", seed)
			}
			return true
		})
		for _, m := range ms {
			if b.persisted(3, m) {
				t.Fatalf("seed %d: the leaver persisted %s", seed, m)
			}
		}
		// the next message of a sender uses one of the new epochs: no further rotation
		b.send(1, room, marker(seed, "later"))
		b.drain()
		if n := b.count(0, id, rooms.TypeRotate) - before; n != rot {
			t.Fatalf("seed %d: a rotation storm: %d rotations, then %d", seed, rot, n)
		}
		for _, i := range []int{0, 1, 2} {
			if _, undec := b.texts(i, room); undec != 0 {
				t.Fatalf("seed %d: member %d has %d undecrypted messages", seed, i, undec)
			}
		}
		b.converged(id, 0, 1, 2, 3)
	}
}

// C23: in a `joined` room a newcomer reads what is sent after its join and
// nothing from before, under any epoch it holds.
func TestE2EEJoinedHistory(t *testing.T) {
	for _, seed := range seeds(t) {
		b := newBus(t, seed, 3)
		room, id := b.newRoom(rooms.HistoryJoined, 1)
		pre := marker(seed, "before-join")
		b.send(0, room, pre)
		b.send(1, room, pre+"-b")
		b.drain()
		b.ok2(b.engines[0].Invite(b.ctx, api.RoomUserReq{Room: room, User: b.user(2)}))
		b.drain()
		b.join(2, room)
		post := marker(seed, "after-join")
		b.send(0, room, post)
		b.send(1, room, post+"-b")
		b.drain()
		shown, undec := b.texts(2, room)
		if len(shown) != 2 || undec != 2 {
			t.Fatalf("seed %d: newcomer shows %v, %d undecrypted; want the 2 post-join messages only", seed, shown, undec)
		}
		if b.persisted(2, pre) {
			t.Fatalf("seed %d: newcomer persisted pre-join plaintext", seed)
		}
		if shown, _ := b.texts(1, room); len(shown) != 4 {
			t.Fatalf("seed %d: member shows %d messages, want 4", seed, len(shown))
		}
		b.converged(id, 0, 1, 2)
	}
}

// Shared history: a newcomer gets the live epoch by a key forward and reads
// the earlier history through back-links; a later device of a member does
// too (multi-device at the room level). Forwards stay few.
func TestE2EESharedHistoryAndDevices(t *testing.T) {
	for _, seed := range seeds(t) {
		b := newBus(t, seed, 3)
		room, id := b.newRoom(rooms.HistoryShared, 1)
		var ms []string
		for k := range 4 {
			ms = append(ms, marker(seed, fmt.Sprintf("early%d", k)))
			b.send(k%2, room, ms[k])
		}
		b.drain()
		b.ok2(b.engines[0].Invite(b.ctx, api.RoomUserReq{Room: room, User: b.user(2)}))
		b.drain()
		b.join(2, room)
		b.send(2, room, marker(seed, "newcomer"))
		b.drain()
		if shown, undec := b.texts(2, room); len(shown) != 5 || undec != 0 {
			t.Fatalf("seed %d: newcomer shows %d, %d undecrypted; want all 5 (%d forwards, %d rotations)", seed, len(shown), undec, b.count(2, id, rooms.TypeKeyFwd), b.count(2, id, rooms.TypeRotate))
		}
		fwd := b.count(0, id, rooms.TypeKeyFwd)
		if fwd < 1 || fwd > 3 {
			t.Fatalf("seed %d: %d key forwards for one newcomer", seed, fwd)
		}
		// a second device of user 1 joins the room's member device set
		d := b.device(1)
		b.join(d, room)
		b.send(0, room, marker(seed, "to-both-devices"))
		b.drain()
		if shown, undec := b.texts(d, room); len(shown) != 6 || undec != 0 {
			t.Fatalf("seed %d: second device shows %d, %d undecrypted; want all 6", seed, len(shown), undec)
		}
		for _, m := range ms {
			if !b.persisted(d, m) {
				t.Fatalf("seed %d: second device did not decrypt %s", seed, m)
			}
		}
		b.converged(id, 0, 1, 2, d)
	}
}

// C26: a sender rotates before sending once the epoch carried
// MaxMessages messages or is older than MaxAgeMS by the injected clock.
func TestE2EEPeriodicRotation(t *testing.T) {
	for _, seed := range seeds(t) {
		b := &bus{policy: e2ee.RotationPolicy{MaxMessages: 5, MaxAgeMS: 7 * 24 * 3600 * 1000}}
		clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		var mu sync.Mutex
		b.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
		*b = bus{t: t, seed: seed, rng: mrand.New(mrand.NewPCG(seed, 7)), ctx: context.Background(), cut: map[[2]int]bool{}, policy: b.policy, now: b.now}
		t.Cleanup(b.close)
		for range 2 {
			master, _ := crdt.GenerateKey(rand.Reader)
			id, _ := crdt.NewIdentity(master, rand.Reader)
			b.masters = append(b.masters, master)
			b.add(id)
		}
		room, id := b.newRoom(rooms.HistoryShared, 1)
		base := b.count(0, id, rooms.TypeRotate)
		for k := range 12 {
			b.send(k%2, room, marker(seed, fmt.Sprintf("m%d", k)))
			b.drain()
		}
		if n := b.count(0, id, rooms.TypeRotate) - base; n != 2 {
			t.Fatalf("seed %d: %d periodic rotations over 12 messages at 5 per epoch, want 2", seed, n)
		}
		mu.Lock()
		clock = clock.Add(8 * 24 * time.Hour)
		mu.Unlock()
		b.send(0, room, marker(seed, "a week later"))
		b.drain()
		if n := b.count(0, id, rooms.TypeRotate) - base; n != 3 {
			t.Fatalf("seed %d: no rotation after a week (%d rotations)", seed, n)
		}
		for _, i := range []int{0, 1} {
			if _, undec := b.texts(i, room); undec != 0 {
				t.Fatalf("seed %d: member %d has %d undecrypted", seed, i, undec)
			}
		}
	}
}

// C19, C20: an add concurrent with a rotation (and with a kick) is healed
// by a key forward: the newcomer reads everything sent after its join by
// anyone; the kicked member reads none of it.
func TestE2EEConcurrentAddAndRotate(t *testing.T) {
	for _, seed := range seeds(t) {
		b := newBus(t, seed, 4)
		room, id := b.newRoom(rooms.HistoryShared, 1, 2)
		b.ok2(b.engines[0].Invite(b.ctx, api.RoomUserReq{Room: room, User: b.user(3)}))
		b.drain()
		rid, err := b.engines[3].TrackRoom(b.ctx, room)
		b.ok(err)
		b.sync(3, rid)
		// concurrently: 3 joins, 1 kicks nobody but 0 kicks 2, and 1 posts
		b.ok2(b.engines[3].Join(b.ctx, rid))
		b.ok2(b.engines[0].Kick(b.ctx, api.RoomUserReq{Room: room, User: b.user(2)}))
		b.send(1, room, marker(seed, "concurrent"))
		b.drain()
		var after []string
		for k := range 6 {
			after = append(after, marker(seed, fmt.Sprintf("after%d", k)))
			b.send([]int{0, 1, 3}[k%3], room, after[k])
		}
		b.drain()
		for _, m := range after {
			if !b.persisted(3, m) {
				t.Fatalf("seed %d: newcomer did not decrypt %s", seed, m)
			}
			if b.persisted(2, m) {
				t.Fatalf("seed %d: kicked member persisted %s", seed, m)
			}
		}
		if n := b.count(0, id, rooms.TypeKeyFwd); n > 8 {
			t.Fatalf("seed %d: %d key forwards", seed, n)
		}
		b.converged(id, 0, 1, 2, 3)
	}
}

// C21: a partition where each side changes membership and chats; after
// healing, every node computes the same state and the removed member reads
// nothing its remover's side sent after the removal.
func TestE2EEPartition(t *testing.T) {
	for _, seed := range seeds(t) {
		b := newBus(t, seed, 4)
		room, id := b.newRoom(rooms.HistoryShared, 1, 2, 3)
		b.ok2(b.engines[0].Role(b.ctx, api.RoleReq{Room: room, User: b.user(2), Role: "admin"}))
		b.drain()
		for _, i := range []int{0, 1} {
			for _, j := range []int{2, 3} {
				b.cut[[2]int{i, j}] = true
			}
		}
		b.ok2(b.engines[0].Kick(b.ctx, api.RoomUserReq{Room: room, User: b.user(3)}))
		b.drain()
		left := marker(seed, "left-side")
		b.send(1, room, left)
		b.send(2, room, marker(seed, "right-side"))
		b.drain()
		b.cut = map[[2]int]bool{}
		for i := range 4 {
			b.sync(i, id)
		}
		b.send(0, room, marker(seed, "after-heal"))
		b.drain()
		if b.persisted(3, left) || b.persisted(3, marker(seed, "after-heal")) {
			t.Fatalf("seed %d: the kicked member persisted plaintext sent after its kick", seed)
		}
		b.converged(id, 0, 1, 2, 3)
	}
}

// C29: keys are persisted before anything uses them: an engine restarted
// on its stores still reads and sends.
func TestE2EERestartKeepsKeys(t *testing.T) {
	b := newBus(t, 1, 2)
	room, _ := b.newRoom(rooms.HistoryShared, 1)
	b.send(0, room, marker(1, "before restart"))
	b.drain()
	b.stop(1)
	<-b.engines[1].stopped
	b.start(1)
	b.send(1, room, marker(1, "after restart"))
	b.drain()
	if shown, undec := b.texts(1, room); len(shown) != 2 || undec != 0 {
		t.Fatalf("restarted member shows %v, %d undecrypted", shown, undec)
	}
	if shown, _ := b.texts(0, room); len(shown) != 2 {
		t.Fatalf("creator shows %v", shown)
	}
}

// A redaction deletes the stored plaintext too.
func TestE2EERedactionDeletesPlaintext(t *testing.T) {
	b := newBus(t, 1, 2)
	room, _ := b.newRoom(rooms.HistoryShared, 1)
	m := marker(1, "to be redacted")
	ev := b.send(0, room, m)
	b.drain()
	if !b.persisted(1, m) {
		t.Fatal("member did not decrypt the message")
	}
	b.ok2(b.engines[0].Redact(b.ctx, api.RedactReq{Room: room, Event: ev}))
	b.drain()
	for i := range 2 {
		if b.persisted(i, m) {
			t.Fatalf("node %d still holds the redacted plaintext", i)
		}
	}
}

// C16 and the first acceptance point, on mocknet: two members
// connected only through a node that hosts the room without membership
// read each other; the host holds only ciphertext, no epoch secret and no
// plaintext (message or room name).
func TestE2EEBlindHostOnMocknet(t *testing.T) {
	tn := newTestNet(t, 3) // 0: alice, 1: host, 2: bob
	tn.link(0, 1)
	tn.link(1, 2)
	ctx := tn.ctx
	alice, host, bob := tn.reps[0].Engine, tn.reps[1].Engine, tn.reps[2].Engine
	name := "PLAINTEXT-MARKER-room-name"
	r, err := alice.CreateRoom(ctx, api.RoomCreateReq{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := host.TrackRoom(ctx, r.Room); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Invite(ctx, api.RoomUserReq{Room: r.Room, User: tn.ids[2].User.String()}); err != nil {
		t.Fatal(err)
	}
	id, _ := crdt.ParseID(r.Room)
	eventually(t, convergeWithin, "host has the invite", func() (bool, string) {
		var m string
		host.do(ctx, func() error {
			if rc := host.rooms[id]; rc.room != nil {
				m = rc.room.MembershipOf(tn.ids[2].User)
			}
			return nil
		})
		return m == rooms.Invite, m
	})
	bobName := "PLAINTEXT-MARKER-bob-display-name"
	if _, err := bob.ProfileSet(ctx, api.ProfileSetReq{Name: &bobName}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.TrackRoom(ctx, r.Room); err != nil {
		t.Fatal(err)
	}
	tn.reps[2].SyncNow(ctx)
	eventually(t, convergeWithin, "bob has the room", func() (bool, string) {
		ok, _ := bob.HasRoomState(ctx, id)
		return ok, ""
	})
	if _, err := bob.Join(ctx, id); err != nil {
		t.Fatal(err)
	}
	fromAlice, fromBob := "PLAINTEXT-MARKER-from-alice", "PLAINTEXT-MARKER-from-bob"
	read := func(e *Engine, want string) func() (bool, string) {
		return func() (bool, string) {
			h, _ := e.History(ctx, api.HistoryReq{Room: r.Room})
			for _, ev := range h.Events {
				if ev.Decrypted && ev.Body == want {
					return true, ""
				}
			}
			return false, fmt.Sprintf("%d events", len(h.Events))
		}
	}
	// alice sends once bob's device is known to her (healing forwards the epoch to bob)
	eventually(t, convergeWithin, "alice sees bob's device", func() (bool, string) {
		var n int
		alice.do(ctx, func() error { n = len(alice.rooms[id].room.MemberDevices(nil)); return nil })
		return n == 2, fmt.Sprint(n)
	})
	if _, err := alice.Send(ctx, api.SendReq{Room: r.Room, Text: fromAlice}); err != nil {
		t.Fatal(err)
	}
	eventually(t, convergeWithin, "bob reads alice", read(bob, fromAlice))
	if _, err := bob.Send(ctx, api.SendReq{Room: r.Room, Text: fromBob}); err != nil {
		t.Fatal(err)
	}
	eventually(t, convergeWithin, "alice reads bob", read(alice, fromBob))
	eventually(t, convergeWithin, "alice reads bob's sealed display name", func() (bool, string) {
		info, _ := alice.Info(ctx, api.RoomReq{Room: r.Room})
		for _, m := range info.Members {
			if m.User == tn.ids[2].User.String() {
				return m.DisplayName == bobName, m.DisplayName
			}
		}
		return false, "bob not listed"
	})
	eventually(t, convergeWithin, "host holds both messages", func() (bool, string) {
		h, _ := host.History(ctx, api.HistoryReq{Room: r.Room})
		n := 0
		for _, ev := range h.Events {
			if ev.Type == rooms.TypeMessage {
				n++
				if ev.Decrypted || ev.Body != "" {
					t.Fatalf("host shows a decrypted message")
				}
			}
		}
		return n == 2, fmt.Sprint(n)
	})
	st := tn.stores[1].(*crdt.MemStore)
	rs, _ := st.Rooms()
	for _, rid := range rs {
		st.Scan(rid, 0, func(s crdt.Stored) bool {
			for _, m := range []string{fromAlice, fromBob, name, bobName} {
				if bytes.Contains(s.Event.Body, []byte(m)) || bytes.Contains(s.Event.Envelope, []byte(m)) {
					t.Fatalf("host stored plaintext %s", m)
				}
			}
			return true
		})
	}
	if info, _ := bob.Info(ctx, api.RoomReq{Room: r.Room}); info.Name != name {
		t.Fatalf("bob reads room name %q", info.Name)
	}
	if info, _ := host.Info(ctx, api.RoomReq{Room: r.Room}); info.Name != "" {
		t.Fatalf("host reads room name %q", info.Name)
	}
	host.kr.local.ScanLocal(nil, func(k, v []byte) bool {
		t.Fatalf("host holds a local key or plaintext (%q)", k[:2])
		return false
	})
	if n := len(host.kr.keys.Epochs(id)); n != 0 {
		t.Fatalf("host holds %d epoch keys", n)
	}
}

// C17, C18: a post concurrent with its author's kick, and concurrent kicks
// by admins (the creator kicks an admin who kicks a moderator; equal
// levels cannot kick each other, so "mutual" kicks need distinct levels):
// every node converges to the same state, timeline and key state, and
// removed nodes read nothing sent later.
func TestE2EEConcurrentKicks(t *testing.T) {
	for _, seed := range seeds(t) {
		b := newBus(t, seed, 4)
		room, id := b.newRoom(rooms.HistoryShared, 1, 2, 3)
		b.ok2(b.engines[0].Role(b.ctx, api.RoleReq{Room: room, User: b.user(1), Role: "admin"}))
		b.ok2(b.engines[0].Role(b.ctx, api.RoleReq{Room: room, User: b.user(2), Role: "moderator"}))
		b.drain()
		// concurrently: 0 kicks 1 while 1 kicks 2; 3 posts while 0 kicks 3
		kick12, err := b.engines[1].Kick(b.ctx, api.RoomUserReq{Room: room, User: b.user(2)})
		b.ok(err)
		kick01, err := b.engines[0].Kick(b.ctx, api.RoomUserReq{Room: room, User: b.user(1)})
		b.ok(err)
		post := b.send(3, room, marker(seed, "concurrent-with-kick"))
		kick03, err := b.engines[0].Kick(b.ctx, api.RoomUserReq{Room: room, User: b.user(3)})
		b.ok(err)
		b.drain()
		b.converged(id, 0, 1, 2, 3)
		// Strong removal (docs/protocol.md §5.1): 1's kick of 2, concurrent
		// with 1's own removal, is hidden, so 2 stays; the creator's kicks
		// take effect; 3's post concurrent with its kick is hidden.
		for i := range 4 {
			for who, want := range map[int]string{1: rooms.Leave, 2: rooms.Join, 3: rooms.Leave} {
				var m string
				b.engines[i].do(b.ctx, func() error { m = b.engines[i].rooms[id].room.MembershipOf(b.idents[who].User); return nil })
				if m != want {
					t.Fatalf("seed %d: node %d sees user %d as %q, want %q", seed, i, who, m, want)
				}
			}
			h, err := b.engines[i].History(b.ctx, api.HistoryReq{Room: room})
			b.ok(err)
			visible := map[string]bool{}
			for _, ev := range h.Events {
				visible[ev.ID] = true
			}
			if !visible[kick01.Event] || !visible[kick03.Event] {
				t.Fatalf("seed %d: node %d does not show the creator's kicks", seed, i)
			}
			if visible[kick12.Event] {
				t.Fatalf("seed %d: node %d shows the kick by a concurrently removed admin", seed, i)
			}
			if visible[post] {
				t.Fatalf("seed %d: node %d shows the post concurrent with its author's kick", seed, i)
			}
		}
		final := marker(seed, "final")
		b.send(0, room, final)
		b.drain()
		for i := 1; i < 4; i++ {
			var m string
			b.engines[i].do(b.ctx, func() error { m = b.engines[i].rooms[id].room.MembershipOf(b.idents[i].User); return nil })
			if m != rooms.Join && b.persisted(i, final) {
				t.Fatalf("seed %d: removed node %d persisted a later message", seed, i)
			}
		}
		b.converged(id, 0, 1, 2, 3)
	}
}

// C27: random invites, joins, leaves, kicks and messages under random
// delivery across five nodes: all converge (state, timeline, member
// devices, admissible epochs), and afterwards every member reads every
// member's next message (liveness: healing and lazy rotation suffice).
func TestE2EEConvergenceFuzz(t *testing.T) {
	for _, seed := range seeds(t) {
		b := newBus(t, seed, 5)
		room, id := b.newRoom(rooms.HistoryShared, 1)
		b.ok2(b.engines[0].Role(b.ctx, api.RoleReq{Room: room, User: b.user(1), Role: "admin"}))
		b.drain()
		membership := func(i int) string {
			var m string
			b.engines[0].do(b.ctx, func() error { m = b.engines[0].rooms[id].room.MembershipOf(b.idents[i].User); return nil })
			return m
		}
		tracked := map[int]bool{0: true, 1: true}
		for step := range 60 {
			i := b.rng.IntN(5)
			switch op := []int{0, 0, 1, 1, 1, 2, 3, 4, 4}[b.rng.IntN(9)]; {
			case op == 0 && membership(i) != rooms.Join && membership(i) != rooms.Invite:
				b.engines[b.rng.IntN(2)].Invite(b.ctx, api.RoomUserReq{Room: room, User: b.user(i)})
			case op == 1 && membership(i) == rooms.Invite:
				if !tracked[i] {
					rid, _ := b.engines[i].TrackRoom(b.ctx, room)
					b.sync(i, rid)
					tracked[i] = true
				}
				b.engines[i].Join(b.ctx, id)
			case op == 2 && i > 1 && membership(i) == rooms.Join:
				b.engines[b.rng.IntN(2)].Kick(b.ctx, api.RoomUserReq{Room: room, User: b.user(i)})
			case op == 3 && i > 1 && membership(i) == rooms.Join:
				b.engines[i].Leave(b.ctx, api.RoomReq{Room: room})
			default:
				if tracked[i] && membership(i) == rooms.Join {
					b.engines[i].Send(b.ctx, api.SendReq{Room: room, Text: marker(seed, fmt.Sprintf("step%d", step))})
				}
			}
			if b.rng.IntN(3) == 0 {
				b.drain()
			}
		}
		b.drain()
		var all []int
		for i := range 5 {
			if tracked[i] {
				b.sync(i, id)
				all = append(all, i)
			}
		}
		b.converged(id, all...)
		t.Logf("seed %d: %d member events, %d rotations, %d forwards, %d messages", seed,
			b.count(0, id, rooms.TypeMember), b.count(0, id, rooms.TypeRotate), b.count(0, id, rooms.TypeKeyFwd), b.count(0, id, rooms.TypeMessage))
		var members []int
		for _, i := range all {
			if membership(i) == rooms.Join {
				members = append(members, i)
			}
		}
		for _, i := range members {
			b.send(i, room, marker(seed, fmt.Sprintf("last-from-%d", i)))
			b.drain()
		}
		for _, i := range members {
			for _, j := range members {
				if m := marker(seed, fmt.Sprintf("last-from-%d", j)); !b.persisted(i, m) {
					t.Fatalf("seed %d: member %d cannot read member %d's last message", seed, i, j)
				}
			}
		}
		for _, i := range all {
			if membership(i) != rooms.Join {
				for _, j := range members {
					if b.persisted(i, marker(seed, fmt.Sprintf("last-from-%d", j))) {
						t.Fatalf("seed %d: non-member %d reads member %d's last message", seed, i, j)
					}
				}
			}
		}
		b.converged(id, all...)
	}
}

// B14: the same ciphertext re-signed in an event by another member is
// accepted by the rules (its epoch is admissible) but does not open: the
// AAD binds the envelope. Replays of one event are idempotent.
func TestE2EELiftedCiphertextDoesNotOpen(t *testing.T) {
	b := newBus(t, 1, 2)
	room, id := b.newRoom(rooms.HistoryShared, 1)
	m := marker(1, "original")
	orig, _ := crdt.ParseID(b.send(0, room, m))
	b.drain()
	e1 := b.engines[1]
	b.ok(e1.do(b.ctx, func() error {
		rc := e1.rooms[id]
		s, err := e1.store.Get(orig)
		if err != nil {
			return err
		}
		d := e1.prepare(rc, rooms.TypeMessage, nil)
		d.Epoch, d.Body = s.Event.Epoch, s.Event.Body
		_, err = e1.commit(id, rc, d)
		return err
	}))
	b.drain()
	b.sync(0, id) // replays every event: no change
	shown, undec := b.texts(0, room)
	if len(shown) != 1 || shown[0] != m || undec != 1 {
		t.Fatalf("shows %v and %d undecrypted; want the original only, the lifted copy undecrypted", shown, undec)
	}
	b.converged(id, 0, 1)
}

// C22 (device removal): a user's other device removes a device; the
// removal carries a rotation without it, and the removed device reads
// nothing sent after it.
func TestE2EEDeviceRevoked(t *testing.T) {
	for _, seed := range seeds(t) {
		b := newBus(t, seed, 2)
		room, id := b.newRoom(rooms.HistoryShared, 1)
		d := b.device(1)
		b.join(d, room)
		before := marker(seed, "before-revoke")
		b.send(0, room, before)
		b.drain()
		if !b.persisted(d, before) {
			t.Fatalf("seed %d: second device did not read %s", seed, before)
		}
		evs, err := b.engines[1].RevokeDevice(b.ctx, b.idents[d].Device.Public())
		b.ok(err)
		if len(evs) != 1 {
			t.Fatalf("seed %d: %d removals", seed, len(evs))
		}
		b.drain()
		after := marker(seed, "after-revoke")
		b.send(0, room, after)
		b.send(1, room, after+"-1")
		b.drain()
		if b.persisted(d, after) || b.persisted(d, after+"-1") {
			t.Fatalf("seed %d: the revoked device reads later messages", seed)
		}
		if !b.persisted(1, after) {
			t.Fatalf("seed %d: the remaining device cannot read", seed)
		}
		if _, err := b.engines[d].Send(b.ctx, api.SendReq{Room: room, Text: "still here?"}); err == nil {
			b.drain()
			if b.persisted(0, "still here?") {
				t.Fatalf("seed %d: a message by the revoked device was read", seed)
			}
		}
		b.converged(id, 0, 1, d)
	}
}

// C30: a removed member handed the CID of a blob sent after its removal
// gets nothing readable: the blob is ciphertext, and the file key lives
// only in the encrypted message, which it cannot open, so no byte it
// persisted or shows holds the key.
func TestE2EERemovedMemberGetsNoBlobKey(t *testing.T) {
	for _, seed := range seeds(t) {
		b := newBus(t, seed, 3)
		room, id := b.newRoom(rooms.HistoryShared, 1, 2)
		b.ok2(b.engines[0].Kick(b.ctx, api.RoomUserReq{Room: room, User: b.user(2)}))
		b.drain()

		store := media.NewMemStore()
		plain := []byte(strings.Repeat(marker(seed, "blob")+" ", 5000)) // several blocks
		key, err := media.NewFileKey(rand.Reader)
		b.ok(err)
		blob, err := media.Import(store, bytes.NewReader(plain), key)
		b.ok(err)
		ref := mimi.MediaRef{CID: blob.Root.String(), ContentHash: blob.Hash[:], Key: key.Bytes(), Size: uint64(blob.Size), MIME: "text/plain", Name: "notes.txt"}
		ev, err := b.engines[0].SendFile(b.ctx, room, ref, nil, "")
		b.ok(err)
		b.drain()

		// The member gets the key from the message.
		if m := mediaOf(b, 1, room, ev.Event); m == nil || m.Key != mediasvc.KeyString(key) || m.CID != ref.CID {
			t.Fatalf("seed %d: the member does not read the file's CID and key: %+v", seed, m)
		}
		// The removed member received the event but shows no CID or key.
		if m := mediaOf(b, 2, room, ev.Event); m != nil {
			t.Fatalf("seed %d: the removed member reads the media message: %+v", seed, m)
		}
		if b.count(2, id, rooms.TypeMessage) == 0 {
			t.Fatalf("seed %d: the removed member never received the media message", seed)
		}
		// No encoding of the key is among its persisted bytes.
		for _, enc := range []string{string(key.Bytes()), mediasvc.KeyString(key), base64.StdEncoding.EncodeToString(key.Bytes())} {
			if b.persisted(2, enc) {
				t.Fatalf("seed %d: the removed member persisted the file key", seed)
			}
		}
		// Handed the CID, it fetches the blocks (a blind host serves them
		// to anyone), which hold no plaintext and open under no other key.
		if err := store.List(func(c cid.Cid) bool {
			blk, _ := store.Get(c)
			if bytes.Contains(blk, []byte(marker(seed, "blob"))) {
				t.Fatalf("seed %d: blob block %s holds plaintext", seed, c)
			}
			return true
		}); err != nil {
			t.Fatal(err)
		}
		other, _ := media.NewFileKey(rand.Reader)
		if r, err := media.NewReader(store, blob.Root, other); err == nil {
			if _, err := io.ReadAll(r); !errors.Is(err, media.ErrDecrypt) {
				t.Fatalf("seed %d: the blob opened under another key: %v", seed, err)
			}
		}
	}
}

// mediaOf is the media of event id in engine i's timeline, nil when it
// shows none.
func mediaOf(b *bus, i int, room, id string) *api.MessageMedia {
	h, err := b.engines[i].History(b.ctx, api.HistoryReq{Room: room})
	b.ok(err)
	for _, ev := range h.Events {
		if ev.ID == id {
			return ev.Media
		}
	}
	return nil
}
