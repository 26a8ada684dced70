package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/rooms/e2ee"
	"github.com/parley-p2p/parley/rooms/mimi"
)

// Engine owns every room's DAG bookkeeping (crdt.Log) and state machine
// (rooms.Room). One goroutine, the one running Serve, touches them; every
// other goroutine reaches them through do. Each call through do is one
// step of the engine core: it proposes batches to commit and collects
// every other effect in a Ready (ready.go), which the driver (driver.go)
// performs after the step: writes ahead, commits (each followed by the
// core's advance or reject), plaintext, purges, then publish, heads,
// fetch, watch items, timers.
type Engine struct {
	ident *crdt.Identity
	store crdt.Store
	log   *slog.Logger
	now   func() time.Time

	calls   chan func()
	stopped chan struct{} // closed when Serve returns

	// owned by the Serve goroutine
	rooms    map[crdt.RoomID]*roomCtl
	watchers map[*watcher]struct{}
	held     *heldNotes // import.go: watch items held during one bulk import call

	// effects, set before Serve; called on the engine goroutine and must not block
	fx Effects

	prefs *prefs   // owned by the Serve goroutine
	kr    *keyring // end-to-end encryption (keys.go); owned by the Serve goroutine
	eph   ephState // typing and presence (ephemeral.go); owned by the Serve goroutine

	call callsState // calls (calls.go); owned by the Serve goroutine

	warned map[string]bool // warnings already streamed to watchers (devices.go); owned by the Serve goroutine

	inv *inviteBook // pending invites (invites.go); owned by the Serve goroutine

	index    *searchIndex // the stored search index (searchindex.go), for queries; owned by the Serve goroutine
	ixr      *indexer     // the background indexer (indexer.go), which writes the index
	indexOut []indexItem  // what the current step asks the indexer to index (indexMessage); owned by the Serve goroutine

	guards guardTable   // rooms' state summaries for the gossip validator (guard.go)
	expiry orphanExpiry // orphans' ages (orphans.go); owned by the Serve goroutine

	// Local writes that failed after their events were committed (a full
	// disk), retried after the next commit and when space returns; owned
	// by the Serve goroutine.
	unpurged    []crdt.EventID // redacted events whose body or plaintext is not purged yet
	rekey       []keysRedo     // accepted events whose key work (keep a secret, store plaintext) failed
	keyFault    error          // set when keeping an epoch secret failed during keysAfter
	keyEvent    crdt.EventID   // the event whose keys gain keeps (keysAfter)
	performing  bool           // the driver is performing a Ready (perform): what is authored now is background work
	sealedPlain []byte         // the plaintext of the sealed event being committed (authorSealed)
	retryAt     time.Time      // when a scheduled retryLocal is due (zero: none)
	prefsUndo   []func()       // what to take back if the step's preferences fail to save (savePrefs)

	out      Ready                                          // what the current step asks the driver to do (ready.go); owned by the Serve goroutine
	local    []*Proposal                                    // the step's local proposals (add), handed to the driver after it (takeLocal)
	made     map[crdt.RoomID]bool                           // rooms the current step created (newRoom), dropped again if their first commit fails
	onReady  func(*Ready)                                   // test hook: sees each Ready before the driver performs its effects
	onWrite  func(what string, room crdt.RoomID, err error) // test hook: sees each write ahead ("prefs", "keep")
	noTimers bool                                           // test hook: the driver schedules no timers (the test fires them)
	handed   map[crdt.EventID]handedContent                 // content a chat import built and decoded off the engine goroutine, read once by the timeline (import.go)
}

type keysRedo struct {
	room crdt.RoomID
	id   crdt.EventID
}

// Effects are what the engine asks the networking side to do.
type Effects struct {
	Publish  func(room crdt.RoomID, ev *crdt.Event)                                              // gossip a locally authored event
	Heads    func(room crdt.RoomID, heads []crdt.EventID)                                        // heads changed
	Missing  func(room crdt.RoomID, ids []crdt.EventID, from peer.ID)                            // fetch these
	Track    func(room crdt.RoomID)                                                              // start gossiping and syncing a room
	Ingested func(room crdt.RoomID, n int)                                                       // tracer hook: events accepted
	Accepted func(room crdt.RoomID, evs []*crdt.Event, from peer.ID)                             // tracer hook: which events, from whom ("" = authored here)
	Invited  func(room crdt.RoomID, target crdt.UserID, create, invite *crdt.Event, name string) // deliver an invite (and the room's name) to the invitee's devices
	Refused  func(room crdt.RoomID, from peer.ID)                                                // a peer's events could not be committed (not for a full disk): sync with it again soon
	Rejected func(room crdt.RoomID, reason string, n int)                                        // tracer hook: offered events not taken (p2p/tracer_events.go)
}

type roomCtl struct {
	log  *crdt.Log
	room *rooms.Room // nil until the create event is held

	// orphansBy counts, per peer, the events it sent that still wait for
	// ancestors (an upper bound: it is capped at the room's pending count).
	orphansBy map[peer.ID]int

	keys roomKeys // end-to-end encryption bookkeeping (keys.go)

	tl *roomTimeline // the message projection, nil until asked for (content.go)

	refs refIndex // sorted short-reference tails of the held events (resolve.go)

	// Accepted events the room state machine holds back until a missing
	// reference arrives (roomwait.go), and who waits for which reference.
	held    map[crdt.EventID]*heldEvent
	waiters map[crdt.EventID][]crdt.EventID

	// whole: the log holds every event the store holds of the room, so
	// the events Log.Add returns as new are not in the store, and their
	// batches are marked crdt.Batch.New (the store skips its check of held
	// events). Known once decided: a room loaded from the store (at start,
	// or kept again after it was dropped: TrackRoom) is whole; another is
	// whole if the store holds no event of it; a failed commit, which may
	// have stored part of its batch, ends it until the next start.
	whole, wholeKnown bool
}

// maxPeerOrphans is how many waiting events one peer may cause in a room.
// Past it, the peer's events are taken only when their references are
// held, so one peer cannot fill the room's orphan buffer.
const maxPeerOrphans = 5000

// admit drops the events of a peer over its orphan budget whose references
// are not all held, and returns the rest.
func (rc *roomCtl) admit(from peer.ID, evs []*crdt.Event) []*crdt.Event {
	if from == "" || rc.orphansBy[from] < maxPeerOrphans {
		return evs
	}
	kept := evs[:0:0]
	for _, ev := range evs {
		ok := true
		for _, ids := range [][]crdt.EventID{ev.Prev, ev.Auth} {
			for _, id := range ids {
				ok = ok && rc.log.Has(id)
			}
		}
		if ok {
			kept = append(kept, ev)
		}
	}
	return kept
}

// countOrphans charges a peer with the events that started waiting.
func (rc *roomCtl) countOrphans(from peer.ID, before int) {
	if from == "" {
		return
	}
	if rc.orphansBy == nil {
		rc.orphansBy = map[peer.ID]int{}
	}
	now := rc.log.Pending()
	n := min(rc.orphansBy[from]+max(0, now-before), now)
	if n == 0 {
		delete(rc.orphansBy, from)
	} else {
		rc.orphansBy[from] = n
	}
}

// watcher is one Watch stream, owned by the engine goroutine. Its channel
// keeps one slot free for a resync item (api.WatchResync): an item that
// finds the rest full is left out, and a resync item follows it, unless
// one that the watcher has not read yet is in the channel already. So a
// slow watcher is never dropped, and it learns of every gap after the gap.
type watcher struct {
	room     crdt.RoomID // zero: all
	ch       chan api.WatchItem
	sent     int // items sent into ch
	resyncAt int // sent when the last resync item went in (0: none)
}

// watchBuffer is a watcher's channel capacity.
const watchBuffer = 1024

// takes reports whether the watcher takes an item now: false while its
// channel is full up to the slot kept for a resync, and a resync it has
// not read is waiting in it (which stands for the item).
func (w *watcher) takes() bool {
	return len(w.ch) < cap(w.ch)-1 || w.resyncAt <= w.sent-len(w.ch)
}

// put sends it, or leaves it out for a resync (takes).
func (w *watcher) put(it api.WatchItem) {
	switch {
	case len(w.ch) < cap(w.ch)-1:
		w.ch <- it
		w.sent++
	case w.resyncAt <= w.sent-len(w.ch): // no unread resync: the free slot takes one
		w.ch <- api.WatchItem{Kind: api.WatchResync, Room: w.room.String()} // what it stands for may be of any room it watches
		w.sent++
		w.resyncAt = w.sent
	}
}

// NewEngine loads every room the store holds and the preferences at
// prefsPath (kept in memory only when prefsPath is empty).
func NewEngine(ident *crdt.Identity, store crdt.Store, prefsPath string, log *slog.Logger) (*Engine, error) {
	return NewEngineWith(ident, store, prefsPath, log, KeyOptions{})
}

// NewEngineWith is NewEngine with end-to-end encryption options.
func NewEngineWith(ident *crdt.Identity, store crdt.Store, prefsPath string, log *slog.Logger, ko KeyOptions) (*Engine, error) {
	return newEngine(ident, store, prefsPath, log, ko, nil, false)
}

// newEngine is NewEngineWith; the rooms of bases start as overlays of
// them (roombase.go), and noIndex leaves the search index out
// (ReplicaOptions.Lean).
func newEngine(ident *crdt.Identity, store crdt.Store, prefsPath string, log *slog.Logger, ko KeyOptions, bases map[crdt.RoomID]*RoomBase, noIndex bool) (*Engine, error) {
	p, err := loadPrefs(prefsPath)
	if err != nil {
		return nil, fmt.Errorf("load preferences: %w", err)
	}
	if ko.Local == nil {
		ls, ok := store.(LocalStore)
		if !ok {
			return nil, fmt.Errorf("node: the store (%T) keeps no node-local values; pass KeyOptions.Local", store)
		}
		ko.Local = ls
	}
	kr, err := newKeyring(ident, ko)
	if err != nil {
		return nil, err
	}
	inv, err := loadInvites(kr.local, p.Invites)
	if err != nil {
		return nil, fmt.Errorf("load invites: %w", err)
	}
	if err := dropPrefsInvites(p); err != nil {
		return nil, err
	}
	e := &Engine{
		prefs: p, kr: kr, inv: inv,
		ident: ident, store: store, log: log, now: wallClock,
		calls:    make(chan func()),
		stopped:  make(chan struct{}),
		rooms:    map[crdt.RoomID]*roomCtl{},
		watchers: map[*watcher]struct{}{},
	}
	catchUp := false
	if !noIndex {
		catchUp = e.openIndex() // first: what loading decrypts is indexed
	}
	ids, err := store.Rooms()
	if err != nil {
		return nil, fmt.Errorf("list rooms: %w", err)
	}
	for _, id := range ids {
		if slices.Contains(p.Unhosted, id.String()) {
			continue
		}
		if err := e.loadRoom(id, bases[id]); err != nil {
			return nil, err
		}
	}
	if catchUp {
		e.catchUpIndex()
	}
	e.made = nil // loaded, not created by a step
	return e, nil
}

// loadRoom keeps a room the store holds events of, as the store holds it
// (over base, the shared prefix of a simulation, when not nil): its log
// restored, its accepted events applied, held ones settled, purges a crash
// interrupted finished. At start for every room not unhosted, and when an
// unhosted room is kept again (TrackRoom).
func (e *Engine) loadRoom(id crdt.RoomID, base *RoomBase) error {
	rc := e.newRoom(id)
	var ferr error
	var redacted []crdt.EventID
	restored := func(as []applied) {
		for _, a := range as {
			redacted = append(redacted, a.d.Redacted...)
			e.keysAfter(id, rc, a.ev, true)
		}
	}
	load := func(s crdt.Stored) bool {
		rc.log.Restore(s)
		if s.Status == crdt.StatusAccepted {
			var as []applied
			as, ferr = rc.apply(s.Event, e.storedEvent)
			restored(as)
		}
		return ferr == nil
	}
	var err error
	if base != nil {
		err = rc.loadOver(e.store, base, load)
	} else {
		err = e.store.Scan(id, 0, load)
	}
	if err == nil {
		err = ferr
	}
	if err == nil && rc.room != nil {
		var as []applied
		as, err = rc.settleHeld(e.storedEvent)
		restored(as)
	}
	if err != nil {
		return fmt.Errorf("load room %s: %w", id, err)
	}
	rc.whole, rc.wholeKnown = true, true
	e.purgeOrDefer(redacted) // finishes purges a crash interrupted
	e.guardAfter(id, rc, nil)
	return nil
}

func (e *Engine) newRoom(id crdt.RoomID) *roomCtl {
	rc := &roomCtl{log: crdt.NewLog(id, crdt.LogConfig{})}
	e.rooms[id] = rc
	if e.made == nil {
		e.made = map[crdt.RoomID]bool{}
	}
	e.made[id] = true
	return rc
}

// purgeOrDefer asks the driver to purge the bodies (and plaintext) of
// newly redacted events (Ready.Purge); what fails is kept for retryLocal
// (deferPurge), since the redaction itself is committed already.
func (e *Engine) purgeOrDefer(ids []crdt.EventID) {
	e.out.Purge = append(e.out.Purge, ids...)
}

// deferPurge keeps the purges the driver could not do for retryLocal.
func (e *Engine) deferPurge(ids []crdt.EventID, err error) {
	e.unpurged = append(e.unpurged, ids...)
	e.log.Warn("purge deferred", "err", err)
	e.retryLater()
}

// keysAfterOrDefer runs keysAfter; when keeping an epoch secret fails, the
// event that carried it is kept for retryLocal (a failed decryption keeps
// the decrypted event itself, see decrypt).
func (e *Engine) keysAfterOrDefer(room crdt.RoomID, rc *roomCtl, ev *crdt.Event, again bool) {
	e.keyFault = nil
	e.keysAfter(room, rc, ev, again)
	if e.keyFault != nil {
		e.rekey = append(e.rekey, keysRedo{room, ev.ID})
		e.keyFault = nil
		e.retryLater()
	}
}

// localRetry is how long deferred local writes wait for a retry when no
// commit comes first.
const localRetry = 2 * time.Second

// retryLater schedules retryLocal, unless one is scheduled already.
func (e *Engine) retryLater() {
	if !e.retryAt.IsZero() {
		return
	}
	e.retryAt = e.now().Add(localRetry)
	e.out.Timers = append(e.out.Timers, Timer{Kind: TimerRetry, At: e.retryAt})
}

// retryLocal retries the local writes that failed after their events were
// committed: purges of redacted bodies, and the key work of events (it is
// idempotent: a held secret is not kept twice, stored plaintext is kept).
func (e *Engine) retryLocal() {
	if ids := e.unpurged; len(ids) > 0 {
		e.unpurged = nil
		e.purgeOrDefer(ids)
	}
	redo := e.rekey
	e.rekey = nil
	for _, r := range redo {
		rc := e.rooms[r.room]
		if rc == nil || rc.room == nil {
			continue
		}
		s, err := e.store.Get(r.id)
		if err != nil {
			e.rekey = append(e.rekey, r)
			e.retryLater()
			continue
		}
		e.keysAfterOrDefer(r.room, rc, s.Event, true) // a failed decryption queues itself again
		e.timelineReread(r.room, rc, s.Event)         // it was listed as unreadable then
		if rc.keys.dirty {
			e.heal(r.room, rc, false)
		}
	}
}

// RetryLocal retries deferred local writes (see retryLocal); the disk
// guard calls it when space returns.
func (e *Engine) RetryLocal(ctx context.Context) error {
	return e.do(ctx, func() error { e.retryLocal(); return nil })
}

// Ingest offers events received from a peer (gossip or sync). Each room's
// events are one step: the core proposes the batch to commit (propose),
// the driver commits it and advances the core (perform), so that nothing
// of a room is authored on events the store does not hold yet.
func (e *Engine) Ingest(ctx context.Context, from peer.ID, evs []*crdt.Event) error {
	if len(evs) == 0 {
		return nil
	}
	byRoom := map[crdt.RoomID][]*crdt.Event{}
	var order []crdt.RoomID
	for _, ev := range evs {
		if byRoom[ev.Room] == nil {
			order = append(order, ev.Room)
		}
		byRoom[ev.Room] = append(byRoom[ev.Room], ev)
	}
	var errs []error
	for _, room := range order {
		err := e.do(ctx, func() error {
			if rc := e.rooms[room]; rc != nil { // else not a room we keep
				if p := e.propose(room, rc, from, false, byRoom[room]...); p != nil {
					e.out.Propose = append(e.out.Propose, p)
				}
			}
			return nil
		})
		if errors.Is(err, ErrClosed) {
			return err
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Proposal is a batch of events the core took into a room's log and asks
// the driver to commit (Ready.Propose). The driver commits it and calls
// advance, which applies it to the room; when the store refused it, reject
// reverts the log, leaving the core exactly as before the input.
type Proposal struct {
	Room  crdt.RoomID
	Batch crdt.Batch

	rc       *roomCtl
	from     peer.ID
	dropped  int // offered events over the peer's orphan budget (admit)
	pending  int // the log's pending count before
	ready    crdt.Ready
	undo     *crdt.Undo
	finished func() // ends the guard table's change (guard.go)

	// A local proposal (add): the events are in the room state already.
	local   bool
	undos   []*crdt.Undo   // one per add, reverted newest first
	applied []applied      // what the room state machine applied, in order (roomwait.go)
	heads0  []crdt.EventID // the log's heads before the step
	created bool           // the step created the room
	keys    roomKeys       // the room's key bookkeeping before the step
	kept    []e2ee.EpochID // epoch keys the step made for its events (Ready.Keep)
	mark    readyMark      // the Ready's lengths when the room's step began
	held    *heldNotes     // import.go: the bulk import that added the events
	err     error          // a write the commit depends on failed (failLocal)
	bg      bool           // authored by the driver's advance or a timer, not by a command: its failure is logged, not returned
}

// add takes events authored or imported here into a room, the local
// counterpart of Ingest's propose. The events enter the log and the room
// state machine at once, tentatively, since the step drafts its next
// events on them (a room create authors several); every other effect of
// theirs waits for the commit. All the events a step adds to one room make
// one local Proposal, which the driver commits as one batch after the step
// (perform): on success advance runs the events' effects (publish, watch,
// keys, timeline); when the store refuses the batch, reject reverts the
// log, rebuilds the room state from the store and drops the step's items
// of that room, so the core is as before the input.
func (e *Engine) add(room crdt.RoomID, rc *roomCtl, from peer.ID, durable bool, evs ...*crdt.Event) error {
	p := e.localProposal(room, rc)
	p.from = from
	p.ready.Batch.Durable = p.ready.Batch.Durable || durable
	ready, undo := rc.log.AddUndo(evs...)
	p.undos = append(p.undos, undo)
	p.ready.Batch.Events = append(p.ready.Batch.Events, ready.Batch.Events...)
	p.ready.Missing = append(p.ready.Missing, ready.Missing...)
	p.ready.Equivocations = append(p.ready.Equivocations, ready.Equivocations...)
	for _, ev := range ready.Accepted {
		as, err := rc.apply(ev, e.storedEvent)
		if err != nil {
			e.log.Warn("apply event", "room", room, "event", ev.ID, "err", err)
		}
		p.ready.Accepted = append(p.ready.Accepted, ev)
		p.applied = append(p.applied, as...)
		for _, a := range as {
			e.callsAfter(room, rc, a.ev) // the step reads its own calls (a leave that empties a call ends it)
		}
	}
	return nil
}

// storedEvent returns an event from the store, or from the step's local
// proposals (stored).
func (e *Engine) storedEvent(id crdt.EventID) (*crdt.Event, error) {
	s, err := e.stored(id)
	return s.Event, err
}

// stored returns an event from the store, or from the step's local
// proposals (added, not committed yet).
func (e *Engine) stored(id crdt.EventID) (crdt.Stored, error) {
	for _, p := range e.local {
		for _, s := range p.ready.Batch.Events {
			if s.Event.ID == id {
				return s, nil
			}
		}
	}
	return e.store.Get(id)
}

// localProposal returns the step's local proposal for a room, starting it
// (and noting what reject must restore) on the room's first authored
// event or kept key.
func (e *Engine) localProposal(room crdt.RoomID, rc *roomCtl) *Proposal {
	for _, p := range e.local {
		if p.Room == room {
			return p
		}
	}
	p := &Proposal{
		Room: room, rc: rc, local: true, heads0: rc.log.Heads(), created: e.made[room], keys: rc.keys,
		mark: e.out.mark(), held: e.held, pending: rc.log.Pending(), finished: e.guards.changing(), bg: e.performing,
	}
	p.ready.Batch.Room = room
	e.local = append(e.local, p)
	return p
}

// takeLocal hands the step's local proposals to the driver, each with the
// batch of everything its room took in during the step (the heads moved
// from those before the step to the log's now).
func (e *Engine) takeLocal() []*Proposal {
	ps := e.local
	e.local = nil
	for _, p := range ps {
		b := &p.ready.Batch
		heads := p.rc.log.Heads()
		b.AddHeads = slices.DeleteFunc(slices.Clone(heads), func(id crdt.EventID) bool { return slices.Contains(p.heads0, id) })
		b.RemoveHeads = slices.DeleteFunc(slices.Clone(p.heads0), func(id crdt.EventID) bool { return slices.Contains(heads, id) })
		b.New = e.whole(p.Room, p.rc)
		p.Batch = *b
	}
	return ps
}

// abandonLocal rejects the step's local proposal of a room before it is
// committed (all or nothing, such as a room create that failed half-way).
func (e *Engine) abandonLocal(room crdt.RoomID) {
	for i, p := range e.local {
		if p.Room == room {
			e.local = slices.Delete(e.local, i, i+1)
			e.rejectLocal(p)
			return
		}
	}
}

// failLocal marks the step's pending local proposals (of one room, or all
// when room is empty) as refused before their commit: a write that must
// precede them failed (Ready.Keep, Ready.Prefs).
func (e *Engine) failLocal(room crdt.RoomID, err error) {
	for _, ps := range [][]*Proposal{e.local, e.out.Propose} {
		for _, p := range ps {
			if p.local && (room == "" || p.Room == room) && p.err == nil {
				p.err = err
			}
		}
	}
}

// rejectLocal reverts a local proposal: the log's adds newest first, the
// keys it kept, the step's Ready items of its room, its key bookkeeping,
// and the room state, rebuilt from the store (which holds the room as
// before the step); a room the step created is dropped.
func (e *Engine) rejectLocal(p *Proposal) {
	room, rc := p.Room, p.rc
	defer p.finished()
	for i := len(p.undos) - 1; i >= 0; i-- {
		p.undos[i].Revert()
	}
	for _, id := range p.kept {
		e.kr.keys.Destroy(room, id)
	}
	e.out.Keep = slices.DeleteFunc(e.out.Keep, func(w KeyWrite) bool { return w.Room == room && slices.Contains(p.kept, w.Epoch) })
	e.out.forgetSince(p.mark, room)
	delete(e.call.index, room) // rebuilt from the store when next asked for
	for _, s := range p.ready.Batch.Events {
		delete(e.kr.unwritten, s.Event.ID)
	}
	rc.keys = p.keys
	if p.bg {
		rc.keys.dirty = true // check healing again after the next commit: a refused key forward is retried
	}
	if p.created {
		delete(e.rooms, room)
		return
	}
	if len(p.undos) > 0 {
		if err := e.reloadRoom(room, rc); err != nil {
			e.log.Error("rebuild room state after a refused commit", "room", room, "err", err)
		}
	}
}

// reloadRoom rebuilds a room's state machine from the events the store
// accepted (the log is current already); the projections derived from it
// are rebuilt when next asked for.
func (e *Engine) reloadRoom(room crdt.RoomID, rc *roomCtl) error {
	rc.room, rc.tl, rc.refs, rc.held, rc.waiters = nil, nil, refIndex{}, nil, nil
	var ferr error
	err := e.store.Scan(room, 0, func(s crdt.Stored) bool {
		if s.Status == crdt.StatusAccepted {
			_, ferr = rc.apply(s.Event, e.storedEvent)
		}
		return ferr == nil
	})
	if err == nil && ferr == nil && rc.room != nil {
		_, ferr = rc.settleHeld(e.storedEvent)
	}
	return errors.Join(err, ferr)
}

// propose takes events into rc's log, the one path by which events enter
// a room, and returns the batch they make to commit; when there is none
// (all pending, known or refused), the step is finished and propose
// returns nil.
func (e *Engine) propose(room crdt.RoomID, rc *roomCtl, from peer.ID, durable bool, evs ...*crdt.Event) *Proposal {
	offered := len(evs)
	evs = rc.admit(from, evs)
	p := &Proposal{Room: room, rc: rc, from: from, dropped: offered - len(evs), pending: rc.log.Pending(), finished: e.guards.changing()}
	p.ready, p.undo = rc.log.AddUndo(evs...)
	p.ready.Batch.Durable = durable
	p.Batch = p.ready.Batch
	if len(p.Batch.Events) == 0 {
		e.finish(p)
		return nil
	}
	p.Batch.New = e.whole(room, rc)
	return p
}

// whole reports whether rc's log holds every event the store holds of the
// room (roomCtl.whole), deciding it on the first batch of a room that was
// not loaded from the store: whole if the store lists no event of it.
func (e *Engine) whole(room crdt.RoomID, rc *roomCtl) bool {
	if !rc.wholeKnown {
		rooms, err := e.store.Rooms()
		rc.whole, rc.wholeKnown = err == nil && !slices.Contains(rooms, room), true
	}
	return rc.whole
}

// advance applies a proposal whose batch the store holds to the room
// (recorded: the commit succeeded and is listed in the Ready's Commits).
func (e *Engine) advance(p *Proposal, recorded bool) {
	room, rc := p.Room, p.rc
	if recorded {
		e.checkCommitted(room, rc, p.ready)
		e.out.Commits = append(e.out.Commits, committed(room, p.Batch))
	}
	e.held = p.held
	steps := p.applied
	if !p.local {
		for _, ev := range p.ready.Accepted {
			as, err := rc.apply(ev, e.storedEvent)
			if err != nil {
				e.log.Warn("apply event", "room", room, "event", ev.ID, "err", err)
			}
			steps = append(steps, as...)
		}
		if len(rc.waiters) > 0 && len(p.ready.Accepted) < len(p.Batch.Events) {
			// A rejected event that held events name: the room judges them.
			as, err := rc.settleHeld(e.storedEvent)
			if err != nil {
				e.log.Warn("apply held events", "room", room, "err", err)
			}
			steps = append(steps, as...)
		}
	}
	for _, a := range steps {
		ev, d := a.ev, a.d
		e.purgeOrDefer(d.Redacted)
		e.keysAfterOrDefer(room, rc, ev, false)
		e.indexAccepted(room, rc, ev)
		e.timelineAfter(room, rc, ev, d)
		if !p.local { // a local event is in the index since add
			e.callsAfter(room, rc, ev)
		}
		e.notify(room, rc, ev)
		e.warnAfter(room, rc, ev)
	}
	if e.held = nil; p.held != nil {
		p.held.flush(e) // a whole batch becomes one resync item per room
		p.held.notes = nil
	}
	guardEvs := p.ready.Accepted
	if len(steps) != len(guardEvs) {
		guardEvs = nil // the room applied held events, or held some: read its guard again
	}
	e.guardAfter(room, rc, guardEvs)
	e.joinedInvite(room, rc)
	e.out.Accepted = append(e.out.Accepted, AcceptedOut{Room: room, Events: p.ready.Accepted, From: p.from})
	e.out.Heads = append(e.out.Heads, HeadsOut{Room: room, Heads: rc.log.Heads()})
	e.finish(p)
	// Authoring waits until the whole batch is applied; so do the retries
	// of deferred local writes, which may author key forwards. What they
	// author is a new local proposal, committed after this one, so a
	// refusal of it takes back nothing of this batch.
	e.retryLocal()
	e.endLeftCalls()
	if rc.keys.dirty {
		e.heal(room, rc, false)
	}
	e.profileWhenKeyed(room, rc)
}

// reject reverts a proposal the store refused: the log is as before the
// input and nothing else changed, so the events count as not held (pull
// sync fetches them again) and an own event is neither published nor
// acknowledged.
func (e *Engine) reject(p *Proposal, err error) {
	if p.local {
		e.rejectLocal(p)
		return
	}
	p.undo.Revert()
	if p.from != "" && !errors.Is(err, ErrDiskFull) {
		e.out.Refused = append(e.out.Refused, FetchOut{Room: p.Room, From: p.from}) // a full disk syncs everything when space returns
	}
	p.finished()
}

// finish ends a proposal's step: orphan accounting, refusals for the
// tracer, events to fetch.
func (e *Engine) finish(p *Proposal) {
	room, rc, ready := p.Room, p.rc, p.ready
	defer p.finished()
	rc.countOrphans(p.from, p.pending)
	e.reportRejected(room, rc, p.dropped, ready)
	for _, q := range ready.Equivocations {
		e.log.Warn("equivocation", "room", room, "device", q.Device, "seq", q.Seq)
	}
	if len(ready.Missing) > 0 {
		e.out.Fetch = append(e.out.Fetch, FetchOut{Room: room, IDs: ready.Missing, From: p.from})
	}
}

// commitError is the error of a refused commit: the store's own when it
// speaks to users (a full disk), wrapped otherwise.
func commitError(err error) error {
	var ke *api.Error
	if errors.As(err, &ke) {
		return err
	}
	return fmt.Errorf("commit: %w", err)
}

func (e *Engine) notify(room crdt.RoomID, rc *roomCtl, ev *crdt.Event) {
	if !e.watched(room) {
		return
	}
	if e.held != nil {
		e.held.add(room, rc, ev)
		return
	}
	if (ev.Type == rooms.TypeMessage || ev.Type == TypeBlob || ev.Type == TypeReceipt || ev.Type == TypeCall) && e.prefs.blocked(ev.User) {
		return
	}
	if it, ok := e.watchItem(room, rc, ev); ok {
		e.emit(room, it)
	}
}

// watched reports whether a watcher of room takes items now (so that no
// item is made for watchers that would leave it out).
func (e *Engine) watched(room crdt.RoomID) bool {
	for w := range e.watchers {
		if (w.room == "" || w.room == room) && w.takes() {
			return true
		}
	}
	return false
}

// emit hands one item to the watchers of its room, through the Ready.
func (e *Engine) emit(room crdt.RoomID, it api.WatchItem) {
	if len(e.watchers) == 0 {
		return
	}
	e.out.Watch = append(e.out.Watch, WatchOut{room, it})
}

// author signs a new event in rc by this node and takes it in. In an
// encrypted room, content events are sealed (keys.go).
func (e *Engine) author(room crdt.RoomID, rc *roomCtl, typ string, skey *string, body []byte) (*crdt.Event, error) {
	if rc.room == nil {
		return nil, errorf(api.KindUnavailable, "room %s is not synced yet; try again when a peer has sent it", room)
	}
	if err := rc.room.Check(e.ident.User, typ, skey, body); err != nil {
		return nil, err
	}
	if rc.room.Encrypted() && rooms.Sealed(typ) {
		return e.authorSealed(room, rc, typ, skey, body)
	}
	d := e.prepare(rc, typ, skey)
	d.Body = body
	return e.commit(room, rc, d)
}

func (e *Engine) roomOf(s string) (crdt.RoomID, *roomCtl, error) {
	id, err := crdt.ParseID(s)
	if err != nil {
		return "", nil, errorf(api.KindInvalid, "%q is not a room ID", s)
	}
	rc := e.rooms[id]
	if rc == nil {
		return "", nil, codef(api.KindNotFound, api.CodeUnknownRoom, "unknown room %s", s)
	}
	return id, rc, nil
}

// CreateRoom founds a room with this user as creator and admin.
func (e *Engine) CreateRoom(ctx context.Context, req api.RoomCreateReq) (api.RoomResp, error) {
	return e.createRoom(ctx, req, nil)
}

// createRoom founds a room; dm names the other user of a direct-message
// room, who is invited in the same step.
func (e *Engine) createRoom(ctx context.Context, req api.RoomCreateReq, dm *crdt.UserID) (api.RoomResp, error) {
	hist := req.History
	if hist == "" {
		hist = rooms.HistoryShared
	}
	if hist != rooms.HistoryShared && hist != rooms.HistoryJoined {
		return api.RoomResp{}, errorf(api.KindInvalid, "history must be shared or joined, not %q", hist)
	}
	if err := checkFields(limitField{"room name", &req.Name, MaxRoomName}, limitField{"topic", &req.Topic, MaxTopic}); err != nil {
		return api.RoomResp{}, err
	}
	rule := rooms.Private
	if req.Public {
		rule = rooms.Public
	}
	nonce := make([]byte, 16)
	if _, err := io.ReadFull(e.kr.rand, nonce); err != nil {
		return api.RoomResp{}, err
	}
	// Private rooms and DMs are end-to-end encrypted unless asked
	// otherwise; public rooms are plaintext unless asked otherwise.
	enc := !req.Public
	if req.Encrypted != nil {
		enc = *req.Encrypted
	}
	cb := rooms.CreateBody{Name: req.Name, Topic: req.Topic, JoinRule: rule, History: hist, Nonce: nonce, E2EE: enc}
	if dm != nil {
		cb.DM = dm[:]
	}
	if enc {
		cb.Name, cb.Topic = "", "" // sealed room.name and room.topic events follow the first epoch
	}
	body := rooms.Encode(cb)
	var resp api.RoomResp
	err := e.do(ctx, func() error {
		ev, err := crdt.Sign(e.ident, crdt.Draft{Type: crdt.TypeCreate, TS: e.now().UnixMilli(), Body: body})
		if err != nil {
			return err
		}
		rc := e.newRoom(ev.ID)
		if err := e.add(ev.ID, rc, "", true, ev); err != nil {
			return err
		}
		e.track(ev.ID)
		e.out.Publish = append(e.out.Publish, Published{ev.ID, ev})
		err = e.foundRoom(ev.ID, rc, enc, req)
		if err == nil && dm != nil {
			_, err = e.invite(ev.ID, rc, ev, *dm, "")
		}
		if err != nil {
			// All or nothing: a room whose setup failed is not kept, and
			// nothing of it is committed, published, tracked or announced.
			e.abandonLocal(ev.ID)
			return err
		}
		resp.Room = ev.ID.String()
		return nil
	})
	return resp, err
}

// foundRoom writes a new room's first events after its create event: the
// first epoch, the sealed name and topic, this user's profile.
func (e *Engine) foundRoom(id crdt.RoomID, rc *roomCtl, enc bool, req api.RoomCreateReq) error {
	if enc {
		if err := e.startEncryption(id, rc); err != nil {
			return err
		}
		empty := ""
		for typ, v := range map[string]string{rooms.TypeName: req.Name, rooms.TypeTopic: req.Topic} {
			if v == "" {
				continue
			}
			if _, err := e.author(id, rc, typ, &empty, rooms.Encode(rooms.TextBody{Value: v})); err != nil {
				return err
			}
		}
	}
	return e.publishProfile(id, rc)
}

// TrackRoom starts keeping a room this node does not hold yet (to join or
// host it); a room it kept before and dropped is loaded from the store.
func (e *Engine) TrackRoom(ctx context.Context, s string) (crdt.RoomID, error) {
	id, err := crdt.ParseID(s)
	if err != nil {
		return "", errorf(api.KindInvalid, "%q is not a room ID", s)
	}
	return id, e.do(ctx, func() error {
		fresh := e.rooms[id] == nil
		mark := e.out.mark()
		i := slices.Index(e.prefs.Unhosted, id.String())
		switch {
		case fresh && i >= 0:
			// Kept before: the store still holds what it kept, so the room
			// is loaded as at start instead of pulled again into a fresh log
			// (whose first batches would leave the old heads in the store).
			// Before the preferences change: a room the store cannot load
			// stays unhosted, not a room that stops the next start.
			if err := e.loadRoom(id, nil); err != nil {
				delete(e.rooms, id)
				e.out.forgetSince(mark, id)
				return err
			}
		case fresh:
			e.newRoom(id)
		}
		if i >= 0 {
			e.prefs.Unhosted = slices.Delete(e.prefs.Unhosted, i, i+1)
			e.savePrefs(func() { // still unhosted: not kept either
				if fresh {
					delete(e.rooms, id)
					e.out.forgetSince(mark, id)
				}
			})
		}
		if fresh {
			e.track(id)
		}
		return nil
	})
}

// HasRoomState reports whether the room's create event is held.
func (e *Engine) HasRoomState(ctx context.Context, id crdt.RoomID) (bool, error) {
	var ok bool
	err := e.do(ctx, func() error {
		rc := e.rooms[id]
		ok = rc != nil && rc.room != nil
		return nil
	})
	return ok, err
}

// Join authors this user's join event.
func (e *Engine) Join(ctx context.Context, id crdt.RoomID) (api.RoomEventResp, error) {
	var resp api.RoomEventResp
	work, err := e.joinWork(ctx, id) // roomlimits.go: before the engine's turn
	if err != nil {
		return resp, err
	}
	err = e.do(ctx, func() error {
		rc := e.rooms[id]
		if rc == nil {
			return errorf(api.KindNotFound, "unknown room %s", id)
		}
		if rc.room != nil {
			if rc.room.MembershipOf(e.ident.User) == rooms.Join {
				resp = api.RoomEventResp{Room: id.String()}
				return e.announceDevice(id, rc, false) // already joined
			}
		}
		me := e.ident.User.String()
		mb := rooms.MemberBody{Membership: rooms.Join, DisplayName: e.prefs.DisplayName, Work: work}
		enc := rc.room != nil && rc.room.Encrypted()
		if enc {
			mb.DisplayName = "" // sealed in a profile event once this device holds a key
		}
		ev, err := e.author(id, rc, rooms.TypeMember, &me, rooms.Encode(mb))
		if err != nil {
			return err
		}
		resp = api.RoomEventResp{Room: id.String(), Event: ev.ID.String()}
		if err := e.announceDevice(id, rc, true); err != nil {
			return err
		}
		if enc {
			rc.keys.profile = e.prefs.DisplayName != "" || e.prefs.Avatar != nil || e.prefs.AvatarLink != ""
			e.profileWhenKeyed(id, rc)
			return nil
		}
		if e.prefs.Avatar != nil || e.prefs.AvatarLink != "" {
			return e.publishProfile(id, rc)
		}
		return nil
	})
	return resp, err
}

// MaxMessage is the largest message text accepted; bigger content belongs in media.
const MaxMessage = 60_000

// Send authors a message: MIMI content (content.go), maybe Markdown, a
// reply or a thread reply.
func (e *Engine) Send(ctx context.Context, req api.SendReq) (api.EventResp, error) {
	if req.Text == "" {
		return api.EventResp{}, errorf(api.KindInvalid, "empty message")
	}
	if err := checkText(req.Text); err != nil {
		return api.EventResp{}, err
	}
	var resp api.EventResp
	err := e.do(ctx, func() error {
		id, rc, err := e.roomOf(req.Room)
		if err != nil {
			return err
		}
		ev, err := e.sendContent(id, rc, req)
		if err != nil {
			return err
		}
		resp.Event = ev.ID.String()
		return nil
	})
	return resp, err
}

// History returns the visible timeline, oldest first, messages projected
// (content.go).
func (e *Engine) History(ctx context.Context, req api.HistoryReq) (api.HistoryResp, error) {
	resp := api.HistoryResp{Events: []api.TimelineEvent{}}
	err := e.do(ctx, func() error {
		id, rc, err := e.roomOf(req.Room)
		if err != nil {
			return err
		}
		if rc.room == nil {
			return nil
		}
		if resp.Events, err = e.history(id, rc, req); err != nil {
			return err
		}
		e.labels(rc, &resp)
		return nil
	})
	return resp, err
}

func (e *Engine) timelineEvent(rc *roomCtl, ev *crdt.Event) api.TimelineEvent {
	te := api.TimelineEvent{ID: ev.ID.String(), Sender: ev.User.String(), Type: ev.Type, TS: ev.TS, Depth: ev.Depth, StateKey: ev.StateKey, Decrypted: true}
	if rc.room != nil && rc.room.Redacted(ev.ID) {
		te.Redacted = true
		return te
	}
	body := ev.Body
	if rc.room != nil && rc.room.Encrypted() && rooms.Sealed(ev.Type) {
		body, te.Decrypted = e.kr.plaintext(ev.ID)
		if !te.Decrypted {
			return te // no key: no text
		}
	}
	switch ev.Type {
	case rooms.TypeMessage:
		if c, ok := e.contentOf(ev.Room, rc, ev); ok {
			if m, err := mimi.Decode(c); err == nil {
				te.Body = mimi.Summary(m)
			}
		}
	case rooms.TypeMember:
		var b rooms.MemberBody
		if rooms.DecodeBody(ev.Body, &b) == nil {
			te.Membership = b.Membership
		}
	case rooms.TypeName, rooms.TypeTopic, rooms.TypeAvatar, rooms.TypeJoinRule:
		var b rooms.TextBody
		if rooms.DecodeBody(body, &b) == nil {
			te.Body = b.Value
		}
	case rooms.TypeRedact:
		var b rooms.RedactBody
		if rooms.DecodeBody(ev.Body, &b) == nil {
			if id, err := crdt.IDFromBytes(b.Target); err == nil {
				te.Redacts = id.String()
			}
		}
	case TypeCall:
		te.Call = callEventOf(ev, body)
	}
	return te
}

// stateOf is the room's resolved state with the sealed room profile (name,
// topic, avatar) filled in from what this node decrypted.
func (e *Engine) stateOf(rc *roomCtl) rooms.State {
	st := rc.room.State()
	if !rc.room.Encrypted() {
		return st
	}
	for typ, dst := range map[string]*string{rooms.TypeName: &st.Name, rooms.TypeTopic: &st.Topic, rooms.TypeAvatar: &st.Avatar} {
		if id := rc.room.StateID(typ, ""); id != "" {
			var b rooms.TextBody
			if pt, ok := e.kr.plaintext(id); ok && rooms.DecodeBody(pt, &b) == nil {
				*dst = b.Value
			}
		}
	}
	for i := range st.Members {
		m := &st.Members[i]
		if id := rc.room.StateID(rooms.TypeProfile, m.User.String()); id != "" {
			var b rooms.ProfileBody
			if pt, ok := e.kr.plaintext(id); ok && rooms.DecodeBody(pt, &b) == nil {
				m.DisplayName, m.Avatar = b.DisplayName, b.Avatar
			}
		}
	}
	return st
}

// Rooms lists the rooms this node keeps, with this user's membership.
func (e *Engine) Rooms(ctx context.Context) (api.RoomListResp, error) {
	resp := api.RoomListResp{Rooms: []api.RoomSummary{}}
	err := e.do(ctx, func() error {
		for id, rc := range e.rooms {
			s := api.RoomSummary{Room: id.String()}
			if rc.room != nil {
				st := e.stateOf(rc)
				s.Name = st.Name
				s.Membership = st.Member(e.ident.User).Membership
				s.DM = dmPeer(st, e.ident.User)
				_, s.AvatarMedia = avatarOut(st.Avatar)
			}
			if inv := e.inv.byID[id.String()]; inv != nil && s.Membership != rooms.Join && s.Membership != rooms.Ban {
				s.Membership = rooms.Invite
				s.Name = cmp.Or(s.Name, inv.Name)
			}
			resp.Rooms = append(resp.Rooms, s)
		}
		for _, inv := range e.inv.list() {
			if id, err := crdt.ParseID(inv.Room); err == nil && e.rooms[id] == nil {
				resp.Rooms = append(resp.Rooms, api.RoomSummary{Room: inv.Room, Name: inv.Name, Membership: rooms.Invite})
			}
		}
		slices.SortFunc(resp.Rooms, func(a, b api.RoomSummary) int { return strings.Compare(a.Room, b.Room) })
		return nil
	})
	return resp, err
}

// Info returns a room's resolved state and how complete this copy is.
func (e *Engine) Info(ctx context.Context, req api.RoomReq) (api.RoomInfoResp, error) {
	var resp api.RoomInfoResp
	err := e.do(ctx, func() error {
		id, rc, err := e.roomOf(req.Room)
		if err != nil {
			return err
		}
		resp = api.RoomInfoResp{Room: id.String(), Members: []api.MemberInfo{}}
		if rc.room != nil {
			st := e.stateOf(rc)
			resp.Name, resp.Topic, resp.Avatar, resp.JoinRule, resp.History = st.Name, st.Topic, st.Avatar, st.JoinRule, st.History
			resp.Avatar, resp.AvatarMedia = avatarOut(st.Avatar)
			if resp.Encrypted = rc.room.Encrypted(); resp.Encrypted {
				for _, d := range rc.room.MemberDevices(nil) {
					resp.Devices = append(resp.Devices, d.Device.String())
				}
			}
			for _, m := range st.Members {
				resp.Members = append(resp.Members, api.MemberInfo{User: m.User.String(), Membership: m.Membership, Role: m.Role, Power: min(m.Power, rooms.PowerAdmin), DisplayName: m.DisplayName, Verified: e.prefs.verified(m.User)})
			}
		}
		resp.Warnings = e.warnings(id, rc)
		resp.Sync = syncInfo(rc.log)
		resp.Sync.Expired = e.expiry.expired[id]
		return nil
	})
	return resp, err
}

func syncInfo(l *crdt.Log) api.SyncInfo {
	si := api.SyncInfo{Events: l.Len(), Missing: l.MissingCount(), Pending: l.Pending(), Heads: []string{}}
	for _, h := range l.Heads() {
		si.Heads = append(si.Heads, h.String())
	}
	return si
}

// RoomCount counts the rooms kept.
func (e *Engine) RoomCount(ctx context.Context) (n int, syncing []string, err error) {
	err = e.do(ctx, func() error {
		n = len(e.rooms)
		for id, rc := range e.rooms {
			if rc.room == nil || rc.log.MissingCount() > 0 || rc.log.Pending() > 0 {
				syncing = append(syncing, id.String())
			}
		}
		slices.Sort(syncing)
		return nil
	})
	return n, syncing, err
}

// Watch registers a watcher; the channel closes when ctx ends. A watcher
// that falls behind gets a resync item for what it missed (watcher).
func (e *Engine) Watch(ctx context.Context, room string) (<-chan api.WatchItem, func(), error) {
	var id crdt.RoomID
	if room != "" {
		var err error
		if id, _, err = e.roomOfChecked(ctx, room); err != nil {
			return nil, nil, err
		}
	}
	w := &watcher{room: id, ch: make(chan api.WatchItem, watchBuffer)}
	if err := e.do(ctx, func() error { e.watchers[w] = struct{}{}; return nil }); err != nil {
		return nil, nil, err
	}
	cancel := func() {
		e.do(context.Background(), func() error {
			if _, ok := e.watchers[w]; ok {
				close(w.ch)
			}
			delete(e.watchers, w)
			return nil
		})
	}
	return w.ch, cancel, nil
}

func (e *Engine) roomOfChecked(ctx context.Context, s string) (crdt.RoomID, bool, error) {
	var id crdt.RoomID
	err := e.do(ctx, func() error {
		var err error
		id, _, err = e.roomOf(s)
		return err
	})
	return id, err == nil, err
}

// Heads returns a room's heads (nil for an unknown room).
func (e *Engine) Heads(ctx context.Context, room crdt.RoomID) ([]crdt.EventID, bool, error) {
	var heads []crdt.EventID
	var ok bool
	err := e.do(ctx, func() error {
		if rc := e.rooms[room]; rc != nil {
			heads, ok = rc.log.Heads(), true
		}
		return nil
	})
	return heads, ok, err
}

// HeadsGap returns a room's heads and how many events its log misses.
func (e *Engine) HeadsGap(ctx context.Context, room crdt.RoomID) ([]crdt.EventID, int, bool, error) {
	var heads []crdt.EventID
	var missing int
	var ok bool
	err := e.do(ctx, func() error {
		if rc := e.rooms[room]; rc != nil {
			heads, missing, ok = rc.log.Heads(), rc.log.MissingCount(), true
		}
		return nil
	})
	return heads, missing, ok, err
}

// Known reports which of ids this node holds.
func (e *Engine) Known(ctx context.Context, room crdt.RoomID, ids []crdt.EventID) ([]bool, error) {
	out := make([]bool, len(ids))
	err := e.do(ctx, func() error {
		rc := e.rooms[room]
		if rc == nil {
			return nil
		}
		for i, id := range ids {
			out[i] = rc.log.Has(id)
		}
		return nil
	})
	return out, err
}

// Since lists what a peer that knows `known` lacks, in ascending (depth, id) order.
func (e *Engine) Since(ctx context.Context, room crdt.RoomID, known []crdt.EventID) ([]crdt.EventID, error) {
	var ids []crdt.EventID
	err := e.do(ctx, func() error {
		if rc := e.rooms[room]; rc != nil {
			ids = rc.log.Since(known)
		}
		return nil
	})
	return ids, err
}

// Items lists (depth, id) of the room's events at or above minDepth.
func (e *Engine) Items(ctx context.Context, room crdt.RoomID, minDepth uint64) ([]crdt.Item, error) {
	var items []crdt.Item
	err := e.do(ctx, func() error {
		if rc := e.rooms[room]; rc != nil {
			items = rc.log.Items(minDepth)
		}
		return nil
	})
	return items, err
}

// Gap reports how many ancestors are missing and which (up to max, none
// when max is 0; crdt.Log.MissingIDs).
func (e *Engine) Gap(ctx context.Context, room crdt.RoomID, max int) (int, []crdt.EventID, error) {
	var n int
	var ids []crdt.EventID
	err := e.do(ctx, func() error {
		if rc := e.rooms[room]; rc != nil {
			if n = rc.log.MissingCount(); n > 0 && max > 0 {
				ids = rc.log.MissingIDs(max)
			}
		}
		return nil
	})
	return n, ids, err
}

// MayServe decides whether a peer may pull a room: public rooms to anyone,
// others to users with a membership in the room (user is the peer's user,
// proven by its device certificate).
func (e *Engine) MayServe(ctx context.Context, room crdt.RoomID, user crdt.UserID) bool {
	ok := false
	e.do(ctx, func() error {
		rc := e.rooms[room]
		if rc == nil || rc.room == nil {
			return nil
		}
		// Banned users are served too, so that they learn of their ban and
		// hide their own concurrent messages; with end-to-end encryption
		// they receive only ciphertext they hold no key for. An encrypted
		// room is served to any peer that proved it knows the room ID (the
		// sync server checks the proof, p2p/roomgate.go): the ID is the
		// capability a blind host needs (docs/design.md §6), and the log holds
		// ciphertext only.
		ok = rc.room.JoinRule() == rooms.Public || rc.room.Encrypted() || rc.room.MembershipOf(user) != ""
		return nil
	})
	return ok
}

// RoomIDs lists the rooms the engine keeps.
func (e *Engine) RoomIDs(ctx context.Context) []crdt.RoomID {
	var ids []crdt.RoomID
	e.do(ctx, func() error {
		for id := range e.rooms {
			ids = append(ids, id)
		}
		return nil
	})
	return ids
}

// MaxDepth is the depth of the room's deepest event.
func (e *Engine) MaxDepth(ctx context.Context, room crdt.RoomID) (uint64, error) {
	var d uint64
	err := e.do(ctx, func() error {
		if rc := e.rooms[room]; rc != nil {
			d = rc.log.MaxDepth()
		}
		return nil
	})
	return d, err
}

// IsMemberDevice tells whether dev is a device of a user who has joined a
// room this engine keeps (the peer score's P5, p2p.MemberScores): in an
// encrypted room, a device the room announces (not removed); in any room,
// a device that authored an accepted event (signed, with the device
// certificate of its user) while its user holds a join now. In an
// encrypted room a removed device is refused even though it authored
// events.
func (e *Engine) IsMemberDevice(ctx context.Context, dev crdt.DeviceID) bool {
	var ok bool
	e.do(ctx, func() error {
		for _, rc := range e.rooms {
			if rc.room == nil {
				continue
			}
			if rc.room.Encrypted() {
				if rec, u := rc.room.DeviceOf(dev); rec != nil && rc.room.MembershipOf(u) == rooms.Join {
					ok = true
					return nil
				}
				continue
			}
			id, held := rc.log.LatestOf(dev)
			if !held {
				continue
			}
			s, err := e.store.Get(id)
			if err != nil || s.Event == nil || s.Event.Device != dev {
				continue
			}
			if rc.room.MembershipOf(s.Event.User) == rooms.Join {
				ok = true
				return nil
			}
		}
		return nil
	})
	return ok
}

// UserOfDevice returns the user of a device announced in a room this
// engine keeps (hosted or joined) whose user holds a membership there (any:
// join, invite, knock, leave or ban). A device revoked everywhere, or
// announced in no kept room, is unknown.
func (e *Engine) UserOfDevice(ctx context.Context, dev crdt.DeviceID) (crdt.UserID, bool) {
	var (
		user crdt.UserID
		ok   bool
	)
	e.do(ctx, func() error {
		for _, rc := range e.rooms {
			if rc.room == nil {
				continue
			}
			if rec, u := rc.room.DeviceOf(dev); rec != nil && rc.room.MembershipOf(u) != "" {
				user, ok = u, true
				return nil
			}
		}
		return nil
	})
	return user, ok
}
