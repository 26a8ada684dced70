package node

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/crdt/faultstore"
)

// The engine runs on a faultstore as on any store: it keeps node-local
// values too, so its faults reach epoch secrets and plaintext.
var _ LocalStore = (*faultstore.Store)(nil)

// faultNet is a testNet whose node x keeps its events in a faultstore.
func faultNet(t *testing.T, n, x int, inj faultstore.Injector) (*testNet, *faultstore.Store) {
	t.Helper()
	var fs *faultstore.Store
	tn := newTestNetWith(t, n, func(i int, s crdt.Store) crdt.Store {
		if i != x {
			return s
		}
		fs = faultstore.New(s, inj)
		return fs
	})
	for i := range n {
		for j := i + 1; j < n; j++ {
			tn.link(i, j)
		}
	}
	return tn, fs
}

// convergedFully waits until every node shows the same heads, no gap and
// no orphan, the same timeline, and every event in want.
func (tn *testNet) convergedFully(room string, want []string, d time.Duration, what fmt.Stringer) {
	tn.t.Helper()
	eventually(tn.t, d, fmt.Sprint("convergence under ", what), func() (bool, string) {
		var heads0, hist0 []string
		state := ""
		ok := true
		for i := range tn.reps {
			info, err := tn.reps[i].Engine.Info(tn.ctx, api.RoomReq{Room: room})
			if err != nil {
				return false, fmt.Sprintf("node %d: %v", i, err)
			}
			hist := tn.history(i, room)
			state += fmt.Sprintf("node %d: %d events, missing %d, pending %d, heads %d; ", i, len(hist), info.Sync.Missing, info.Sync.Pending, len(info.Sync.Heads))
			if i == 0 {
				heads0, hist0 = info.Sync.Heads, hist
			}
			if info.Sync.Missing != 0 || info.Sync.Pending != 0 || !slices.Equal(info.Sync.Heads, heads0) || !slices.Equal(hist, hist0) {
				ok = false
			}
			for _, id := range want {
				if !slices.Contains(hist, id) {
					ok = false
					state += fmt.Sprintf("(lacks acknowledged %s) ", id)
				}
			}
		}
		return ok, state
	})
}

// TestFaultCommitRevertsLog is the regression test of the lost-batch bug:
// a node whose store refuses the commit of a gossiped batch must count
// those events as not held, so that the room converges by sync without a
// restart. Before the fix the log kept them as held (heads included),
// sync saw nothing to fetch, and the room state never got them.
func TestFaultCommitRevertsLog(t *testing.T) {
	tn, fs := faultNet(t, 2, 1, nil)
	room := setupRoom(t, tn)
	tn.converged(room, 2, convergeWithin, 0, 1)
	id, err := crdt.ParseID(room)
	if err != nil {
		t.Fatal(err)
	}
	fs.Inject(faultstore.Room(id))
	var acked []string
	for k := range 5 {
		r, err := tn.reps[0].Engine.Send(tn.ctx, api.SendReq{Room: room, Text: fmt.Sprint("while failing ", k)})
		if err != nil {
			t.Fatal(err)
		}
		acked = append(acked, r.Event)
	}
	eventually(t, convergeWithin, "node 1 refuses a commit", func() (bool, string) {
		return len(fs.Faults()) > 0, "no fault yet"
	})
	fs.Inject(nil)
	r, err := tn.reps[0].Engine.Send(tn.ctx, api.SendReq{Room: room, Text: "after"})
	if err != nil {
		t.Fatal(err)
	}
	acked = append(acked, r.Event)
	tn.convergedFully(room, acked, convergeWithin, fs)
	t.Logf("%d commits refused: %v", len(fs.Faults()), fs.Faults()[:1])
}

// TestFaultNthCommit is the in-process acceptance of storage faults: in a
// 3-node room where the nodes join and each sends messages, node 2's store
// fails its Nth commit, for every N up to the number of commits node 2
// makes in a run without faults. Each run must end converged (same heads,
// no gap, same timeline) with every acknowledged send present; a refused
// send of node 2 is simply sent again, as a user would. With -tags
// invariants the engine checks itself after every commit.
func TestFaultNthCommit(t *testing.T) {
	total := faultRun(t, nil, false)
	ns := make([]int, 0, total)
	for n := 1; n <= total; n++ {
		ns = append(ns, n)
	}
	if testing.Short() {
		ns = []int{1, total / 2, total}
	}
	t.Logf("node 2 commits %d times in a run without faults; failing each N of %v", total, ns)
	fired := 0
	for _, n := range ns {
		t.Run(fmt.Sprint("N=", n), func(t *testing.T) {
			inj := faultstore.NthCommit(n)
			if faultRun(t, inj, false) >= n {
				fired++
			}
		})
	}
	if fired < len(ns)*3/4 {
		t.Fatalf("only %d of %d runs reached their failing commit", fired, len(ns))
	}
}

// TestFaultEncryptedRoom runs the scenario in an end-to-end encrypted room
// with node 2's store failing every kind of write (commits, epoch secrets,
// plaintext) at random: besides converging, every node must read every
// acknowledged message, so the key work whose local writes failed (an
// epoch secret not kept, plaintext not stored) must have been done again.
func TestFaultEncryptedRoom(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4, 5, 6}
	if testing.Short() {
		seeds = seeds[:2]
	}
	for _, seed := range seeds {
		inj := faultstore.Probability(0.15, seed)
		t.Run(inj.String(), func(t *testing.T) { faultRun(t, inj, true) })
	}
}

// faultRun plays the scenario of TestFaultNthCommit with node 2's store
// failing as inj decides, in an encrypted room when enc, and returns how
// many commits node 2 made.
func faultRun(t *testing.T, inj faultstore.Injector, enc bool) int {
	t.Helper()
	tn, fs := faultNet(t, 3, 2, inj)
	ctx := tn.ctx
	// retry runs a write of node i until it succeeds: a node's own refused
	// writes fail cleanly and change nothing, so trying again is all a
	// user does.
	retry := func(i int, what string, fn func() error) {
		t.Helper()
		eventually(t, convergeWithin, fmt.Sprintf("node %d: %s under %s", i, what, fs), func() (bool, string) {
			err := fn()
			return err == nil, fmt.Sprint(err)
		})
	}
	created, err := tn.reps[0].Engine.CreateRoom(ctx, api.RoomCreateReq{Name: "faults", Public: true, Encrypted: &enc})
	if err != nil {
		t.Fatal(err)
	}
	room := created.Room
	for i := 1; i < 3; i++ {
		id, err := tn.reps[i].Engine.TrackRoom(ctx, room)
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, convergeWithin, fmt.Sprintf("room reaches node %d under %s", i, fs), func() (bool, string) {
			ok, _ := tn.reps[i].Engine.HasRoomState(ctx, id)
			return ok, ""
		})
		retry(i, "join", func() error { _, err := tn.reps[i].Engine.Join(ctx, id); return err })
	}
	var acked []string
	for k := range 4 {
		for i := range 3 {
			retry(i, "send", func() error {
				r, err := tn.reps[i].Engine.Send(ctx, api.SendReq{Room: room, Text: fmt.Sprintf("node %d message %d", i, k)})
				if err == nil {
					acked = append(acked, r.Event)
				}
				return err
			})
		}
	}
	tn.convergedFully(room, acked, convergeWithin, fs)
	if enc {
		eventually(t, convergeWithin, fmt.Sprint("every node reads every message under ", fs), func() (bool, string) {
			for i := range tn.reps {
				h, err := tn.reps[i].Engine.History(ctx, api.HistoryReq{Room: room})
				if err != nil {
					return false, err.Error()
				}
				for _, e := range h.Events {
					if slices.Contains(acked, e.ID) && (!e.Decrypted || e.Body == "") {
						return false, fmt.Sprintf("node %d cannot read %s", i, e.ID)
					}
				}
			}
			return true, ""
		})
	}
	return fs.Commits()
}
