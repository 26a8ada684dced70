package p2p

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/crdt/rbsr"
	"github.com/parley-p2p/parley/node/internal/mailbox"
	"github.com/parley-p2p/parley/node/wire"
)

// SyncProtocol is the pull protocol that makes sync gap-free (docs/protocol.md).
// 1.1: rooms are named by their reference, and served only to a peer that
// proved the room (room-proof exchange).
const SyncProtocol = protocol.ID("/parley/sync/1.1.0")

// Limits of the sync protocol.
const (
	pageEvents = 1000
	pageBytes  = 1 << 20
	// limitedPageBytes bounds a page sent over a limited (relayed)
	// connection (limited.go): a relay closes a circuit at its byte budget,
	// and what the requester ingested of small pages stays, so the next
	// circuit goes on from there instead of resending a cut-off page.
	limitedPageBytes = 16 << 10
	maxGetIDs        = 256
	maxKnownIDs      = 64
	sessionIdle      = 30 * time.Second
	MaxPeerSessions  = 4
	syncWorkers      = 4
)

// Operations.
const (
	opHeads     = "heads"
	opSince     = "since"
	opGet       = "get"
	opReconcile = "reconcile"
	opEvents    = "events"
	opDone      = "done"
	opError     = "error"
)

// syncMsg is every frame of the sync protocol, requests and answers alike.
type syncMsg struct {
	Op       string   `cbor:"op"`
	Room     []byte   `cbor:"room,omitempty"` // the room's reference (RoomRef)
	User     []byte   `cbor:"user,omitempty"` // first request: the requester's user ...
	Cert     []byte   `cbor:"cert,omitempty"` // ... and the certificate binding its peer key to it
	IDs      [][]byte `cbor:"ids,omitempty"`
	Known    []bool   `cbor:"known,omitempty"`
	Events   [][]byte `cbor:"events,omitempty"`
	Msg      []byte   `cbor:"msg,omitempty"`
	MinDepth uint64   `cbor:"min_depth,omitempty"`
	Err      string   `cbor:"err,omitempty"`
}

// Syncer serves and runs pull-sync sessions.
type Syncer struct {
	host   host.Host
	engine SyncEngine
	gate   *RoomGate
	store  crdt.Store
	ident  *crdt.Identity
	log    *slog.Logger
	rng    *rand.Rand

	mu               sync.Mutex
	queued           map[syncJob]bool // guarded by mu
	pending          []syncJob        // FIFO of queued jobs; guarded by mu
	*wire.PeerLimits                  // serving sessions and request rate per peer
	wake             chan struct{}    // capacity 1: pending is not empty
	tracer           Tracer
	connected        *mailbox.Mailbox[peer.ID]
	rp               *repairs                  // repair-peer selection (repair.go)
	retries          *mailbox.Mailbox[syncJob] // sessions to run again after commitRetry

	running  map[syncKey]bool         // rooms and peers with a job running; guarded by mu
	deferred map[syncKey][]syncJob    // jobs that came while one ran (begin); guarded by mu
	pulls    map[crdt.RoomID]*roomRun // rooms with a pull running (claimPull); guarded by mu
}

// roomRun is the bookkeeping of a room that sync pulls events of (claimPull).
type roomRun struct {
	n        int       // pulls of the room running
	progress time.Time // when one of them last received an answer or a page
	deferred []deferredJob
}

// deferredJob is a job that waits for the room's running pull (claimPull).
type deferredJob struct {
	j     syncJob
	since time.Time
}

type syncJob struct {
	room crdt.RoomID
	peer peer.ID
	get  string // non-empty: fetch these ids (concatenated), not a full session
	// repair: close a gap in room through the peers that serve sync for
	// it (repair.go); peer and get are empty.
	repair bool
	// beside: pull even while another pull of the room runs (it waited
	// for one that stalled or ran too long: releaseStalled).
	beside bool
}

// NewSyncer registers the stream handler on h.
func NewSyncer(h host.Host, engine SyncEngine, gate *RoomGate, store crdt.Store, ident *crdt.Identity, log *slog.Logger, tracer Tracer, seed uint64) *Syncer {
	s := &Syncer{
		host: h, engine: engine, gate: gate, store: store, ident: ident, log: log, tracer: tracer,
		rng:        rand.New(rand.NewPCG(seed, seed+1)),
		queued:     map[syncJob]bool{},
		running:    map[syncKey]bool{},
		deferred:   map[syncKey][]syncJob{},
		pulls:      map[crdt.RoomID]*roomRun{},
		PeerLimits: wire.NewPeerLimits(MaxPeerSessions, 200, 400),
		wake:       make(chan struct{}, 1),
		connected:  mailbox.New[peer.ID](),
		rp:         newRepairs(),
		retries:    mailbox.New[syncJob](),
	}
	h.SetStreamHandler(SyncProtocol, s.handle)
	return s
}

// Jobs reports how many sync jobs are queued (for a worker, or waiting
// for a job of their room and peer, begin, or for a pull of their room,
// claimPull) and how many run.
func (s *Syncer) Jobs() (queued, running int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	queued = len(s.pending)
	for _, js := range s.deferred {
		queued += len(js)
	}
	for _, r := range s.pulls {
		queued += len(r.deferred)
	}
	return queued, len(s.running)
}

// PageEvents is the most events one sync page carries.
const PageEvents = pageEvents

// Trigger schedules a sync session for room with p. It never blocks.
func (s *Syncer) Trigger(room crdt.RoomID, p peer.ID) { s.enqueue(syncJob{room: room, peer: p}) }

// Fetch schedules fetching specific events, from `from` first. It never
// blocks. When `from` does not serve sync (a plain gossipsub relay), the
// events are repaired through the peers that do (repair.go).
func (s *Syncer) Fetch(room crdt.RoomID, ids []crdt.EventID, from peer.ID) {
	if from != "" && s.notSync(from) {
		s.Repair(room, ids, from)
		return
	}
	for len(ids) > 0 {
		n := min(len(ids), maxGetIDs)
		var key string
		for _, id := range ids[:n] {
			key += string(id)
		}
		ids = ids[n:]
		targets := []peer.ID{from}
		if from == "" {
			targets = s.host.Network().Peers()
		}
		for _, p := range targets {
			s.enqueue(syncJob{room: room, peer: p, get: key})
		}
	}
}

// commitRetry is how long a session waits before it runs again when the
// engine could not commit what a peer sent.
const commitRetry = 2 * time.Second

// Retry schedules a session for room with p in commitRetry: the engine
// could not commit events p sent (they count as not held, so the session
// fetches them again). It never blocks.
func (s *Syncer) Retry(room crdt.RoomID, p peer.ID) { s.retries.Put(syncJob{room: room, peer: p}) }

// PeerConnected schedules anti-entropy of every room with a newly
// connected peer. It never blocks (it is called from libp2p's notifier).
func (s *Syncer) PeerConnected(p peer.ID) { s.connected.Put(p) }

// AntiEntropy syncs room with one random peer among peers.
func (s *Syncer) AntiEntropy(room crdt.RoomID, peers []peer.ID) {
	peers = slices.DeleteFunc(slices.Clone(peers), s.notSync)
	if len(peers) == 0 {
		// Only relays that do not serve sync: look further (repair.go).
		s.Repair(room, nil, "")
		return
	}
	s.mu.Lock()
	p := peers[s.rng.IntN(len(peers))]
	s.mu.Unlock()
	s.Trigger(room, p)
}

func (s *Syncer) enqueue(j syncJob) {
	if (j.peer == "" && !j.repair) || j.peer == s.host.ID() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queued[j] || len(s.pending) >= maxQueuedJobs {
		return // queued already, or full: the next anti-entropy round repairs it
	}
	s.queued[j] = true
	s.pending = append(s.pending, j)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// maxQueuedJobs bounds the sync work waiting for a worker.
const maxQueuedJobs = 4096

// next takes the oldest queued job, if any, and passes the wake-up on when
// more remain.
func (s *Syncer) next() (syncJob, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) == 0 {
		return syncJob{}, false
	}
	j := s.pending[0]
	s.pending[0] = syncJob{}
	s.pending = s.pending[1:]
	if len(s.pending) == 0 {
		s.pending = nil // let the backing array go
	} else {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	delete(s.queued, j)
	return j, true
}

// syncKey names the room and peer of a session or fetch job.
type syncKey struct {
	room crdt.RoomID
	peer peer.ID
}

// begin claims j's room and peer for a worker. A job that comes while
// another of the same room and peer runs waits for it (it runs after, from
// end) instead of running beside it: two sessions of one room with one
// peer would both pull the same pages (after a restart in the middle of a
// catch-up, every missing event about twice; issue 16). A repair job,
// which has its own running flag, is not held back.
func (s *Syncer) begin(j syncJob) bool {
	if j.repair {
		return true
	}
	k := syncKey{j.room, j.peer}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running[k] {
		if !slices.Contains(s.deferred[k], j) {
			s.deferred[k] = append(s.deferred[k], j)
		}
		return false
	}
	s.running[k] = true
	return true
}

// end releases j's room and peer and queues the jobs that waited for it.
func (s *Syncer) end(j syncJob) {
	if j.repair {
		return
	}
	k := syncKey{j.room, j.peer}
	s.mu.Lock()
	delete(s.running, k)
	waiting := s.deferred[k]
	delete(s.deferred, k)
	s.mu.Unlock()
	for _, w := range waiting {
		s.enqueue(w)
	}
}

// Coalescing of a room's pulls (claimPull).
const (
	// syncStall: a job waiting for its room's pull pulls beside it when
	// that one received nothing for this long ...
	syncStall = 10 * time.Second
	// ... or when it waited this long in all, so that a peer that trickles
	// pages slowly holds up the room's other pulls for a bounded time.
	syncDeferMax = 2 * time.Minute
	// maxDeferred bounds the jobs waiting per room; more are dropped (the
	// deferred sessions, and periodic anti-entropy, pull what they would).
	maxDeferred = 64
)

// claimPull claims room for j, a session that found it lacks events
// (after its heads round) or a fetch of events not held, before it pulls
// them. While another pull of the room runs, whichever peer it is with, j
// does not pull: it waits for that pull and runs again after it (from
// endPull), and then finds what the first pulled held: a heads round when
// the peers agree, else only what the first peer lacked. Two pulls of one
// room would fetch the same events: a fresh node that tracks a room while
// connected to two members that hold it pulled the whole room from each
// (issue 16). Sessions that find nothing to pull (heads offered after
// this node authored, anti-entropy between nodes that agree) are not held
// back. A job that waited for a pull that stalled, or too long, pulls
// beside it (releaseStalled).
func (s *Syncer) claimPull(j syncJob) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.pulls[j.room]
	if r == nil {
		r = &roomRun{}
		s.pulls[j.room] = r
	}
	if r.n > 0 && !j.beside {
		if len(r.deferred) < maxDeferred && !slices.ContainsFunc(r.deferred, func(d deferredJob) bool { return d.j == j }) {
			r.deferred = append(r.deferred, deferredJob{j, time.Now()})
		}
		return false
	}
	if r.n == 0 {
		r.progress = time.Now()
	}
	r.n++
	return true
}

// endPull releases a pull of room claimed with claimPull and, when no
// other pull of the room runs, queues the jobs that waited for it.
func (s *Syncer) endPull(room crdt.RoomID) {
	s.mu.Lock()
	r := s.pulls[room]
	if r == nil {
		s.mu.Unlock()
		return
	}
	r.n--
	var waiting []deferredJob
	if r.n <= 0 {
		waiting = r.deferred
		delete(s.pulls, room)
	}
	s.mu.Unlock()
	for _, w := range waiting {
		s.enqueue(w.j)
	}
}

// progressed notes that a pull of room received an answer or a page.
func (s *Syncer) progressed(room crdt.RoomID) {
	s.mu.Lock()
	if r := s.pulls[room]; r != nil {
		r.progress = time.Now()
	}
	s.mu.Unlock()
}

// releaseStalled lets the jobs waiting for a room whose running pulls
// received nothing for syncStall, and those that waited syncDeferMax, pull
// beside them.
func (s *Syncer) releaseStalled(now time.Time) {
	var run []syncJob
	s.mu.Lock()
	for _, r := range s.pulls {
		stalled := now.Sub(r.progress) >= syncStall
		r.deferred = slices.DeleteFunc(r.deferred, func(d deferredJob) bool {
			if stalled || now.Sub(d.since) >= syncDeferMax {
				d.j.beside = true
				run = append(run, d.j)
				return true
			}
			return false
		})
	}
	s.mu.Unlock()
	for _, j := range run {
		s.enqueue(j)
	}
}

// Serve runs the session workers until ctx is done.
func (s *Syncer) Serve(ctx context.Context) error {
	defer s.host.RemoveStreamHandler(SyncProtocol)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.serveRepairs(ctx) }()
	go func() {
		defer wg.Done()
		retry := time.NewTicker(commitRetry)
		defer retry.Stop()
		due, later := map[syncJob]bool{}, map[syncJob]bool{}
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.retries.Signal:
				for _, j := range s.retries.Take() {
					later[j] = true
				}
			case now := <-retry.C:
				s.releaseStalled(now)
				for j := range due {
					s.enqueue(j)
				}
				due, later = later, map[syncJob]bool{} // at least one full period later
			case <-s.connected.Signal:
				peers := s.connected.Take()
				for _, room := range s.engine.RoomIDs(ctx) {
					for _, p := range peers {
						s.Trigger(room, p)
					}
				}
			}
		}
	}()
	for range syncWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case <-s.wake:
					j, ok := s.next()
					if !ok || !s.begin(j) {
						continue
					}
					var err error
					if j.repair {
						err = s.repair(ctx, j.room)
					} else if j.get != "" {
						err = s.fetch(ctx, j)
					} else {
						err = s.session(ctx, j)
					}
					s.end(j)
					if err != nil && ctx.Err() == nil {
						s.log.Debug("sync", "room", j.room, "peer", j.peer, "err", err)
					}
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

// Frame bounds of the sync protocol (docs/protocol.md §3). A frame over
// the bound of what may come next resets the stream.
const (
	// syncSmallFrame bounds heads and since (at most maxKnownIDs ids each),
	// done and error, and every frame of a served stream until its
	// requester is authorized.
	syncSmallFrame = 8 << 10
	// syncGetFrame bounds get (at most maxGetIDs ids).
	syncGetFrame = 16 << 10
	// syncReconcileFrame bounds reconcile: an RBSR message of at most
	// reconcileFrame and its envelope.
	syncReconcileFrame = reconcileFrame + 4<<10
	// syncPageFrame bounds events: at most pageBytes of events and their
	// envelope. Only a requester reads pages.
	syncPageFrame = pageBytes + 16<<10
)

// conn is one open sync stream. It bounds each frame it reads by what may
// come next: a served stream (server) reads requests, at most
// syncSmallFrame until it has answered heads (the requester passed
// authorize), then each by its op's bound; a requester reads the answers
// to what it asked last.
type conn struct {
	*frames[syncMsg]
	server     bool
	limited    bool   // over a limited (relayed) connection: small pages
	authorized bool   // server: heads answered
	asked      string // requester: op of the last request sent
}

func newConn(st network.Stream) *conn {
	return &conn{frames: newFrames(st, sessionIdle, decodeSyncMsg), limited: st.Conn().Stat().Limited}
}

func (c *conn) send(m *syncMsg) error {
	if c.server {
		c.authorized = c.authorized || m.Op == opHeads
	} else {
		c.asked = m.Op
	}
	return c.frames.send(m)
}

// recvLimit is the largest frame that may come next.
func (c *conn) recvLimit() int {
	switch {
	case c.server && c.authorized:
		return syncReconcileFrame
	case c.server:
		return syncSmallFrame
	case c.asked == opSince || c.asked == opGet:
		return syncPageFrame
	case c.asked == opReconcile:
		return syncReconcileFrame
	}
	return syncSmallFrame
}

// syncRequestBound is the largest request of op a server accepts.
func syncRequestBound(op string) int {
	switch op {
	case opGet:
		return syncGetFrame
	case opReconcile:
		return syncReconcileFrame
	}
	return syncSmallFrame
}

// recv reads the next frame; an error frame from the peer becomes an error.
// A requester keeps the frame reader's buffer from one events page of an
// answer to the next (it is reserved in the stream's scope), and drops it
// at the answer's end; an events page's events are valid until the next
// recv.
func (c *conn) recv() (*syncMsg, error) {
	keep := !c.server && (c.asked == opSince || c.asked == opGet)
	m, size, err := c.frames.recv(c.recvLimit(), keep)
	if keep && (err != nil || m.Op != opEvents) {
		c.frames.r.Shrink()
	}
	if err != nil {
		return nil, err
	}
	if c.server && size > syncRequestBound(m.Op) {
		return nil, fmt.Errorf("%w: %q request of %d octets", wire.ErrFrameTooLarge, m.Op, size)
	}
	if m.Op == opError {
		return nil, fmt.Errorf("peer: %s", m.Err)
	}
	return m, nil
}

// decodeSyncMsg parses one frame strictly.
func decodeSyncMsg(b []byte) (*syncMsg, error) {
	if m, ok := decodeEventsPage(b); ok {
		return m, nil
	}
	var m syncMsg
	if err := crdt.UnmarshalCanonical(b, &m); err != nil {
		return nil, fmt.Errorf("sync frame: %w", err)
	}
	return &m, nil
}

func (s *Syncer) open(ctx context.Context, p peer.ID) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := s.host.NewStream(network.WithAllowLimitedConn(ctx, "sync"), p, SyncProtocol)
	if err != nil {
		return nil, err
	}
	traceSession(s.tracer, p, false)
	return newConn(st), nil
}

func idsToBytes(ids []crdt.EventID) [][]byte {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		out[i] = []byte(id)
	}
	return out
}

func idsFromBytes(bs [][]byte) ([]crdt.EventID, error) {
	out := make([]crdt.EventID, len(bs))
	for i, b := range bs {
		id, err := crdt.IDFromBytes(b)
		if err != nil {
			return nil, err
		}
		out[i] = id
	}
	return out, nil
}

// session runs one client session: compare heads; if the peer knows all our
// heads we are strictly behind and pull what follows them; otherwise the
// histories diverged and we reconcile.
func (s *Syncer) session(ctx context.Context, j syncJob) error {
	room, p := j.room, j.peer
	mine, missing, ok, err := s.engine.HeadsGap(ctx, room)
	if err != nil || !ok {
		return err
	}
	if err := s.gate.Ensure(ctx, p, room); err != nil {
		return err
	}
	ref := RefOf(room)
	c, err := s.open(ctx, p)
	if err != nil {
		return err
	}
	defer c.st.Close()
	if len(mine) > maxKnownIDs {
		mine = mine[:maxKnownIDs]
	}
	if err := c.send(&syncMsg{Op: opHeads, Room: ref[:], User: s.ident.User[:], Cert: s.ident.Cert, IDs: idsToBytes(mine)}); err != nil {
		return err
	}
	resp, err := c.recv()
	if err != nil {
		return err
	}
	s.rememberServer(room, p)
	s.progressed(room)
	theirs, err := idsFromBytes(resp.IDs)
	if err != nil {
		return err
	}
	known, err := s.engine.Known(ctx, room, theirs)
	if err != nil {
		return err
	}
	behind := false
	for _, k := range known {
		behind = behind || !k
	}
	if s.tracer != nil {
		s.tracer.SyncRound(room, p)
	}
	if !behind {
		// We hold all their heads; if they lack ours, they pull. Our
		// log may still miss events below the heads (a store that lost
		// some): ask for them.
		if missing == 0 {
			return nil
		}
		return s.fetchGaps(ctx, c, j)
	}
	if !s.claimPull(j) {
		return nil // another pull of the room runs: this session runs again after it
	}
	defer s.endPull(room)
	strictly := len(resp.Known) == len(mine)
	for _, k := range resp.Known {
		strictly = strictly && k
	}
	if strictly || len(mine) == 0 {
		if err := s.pullSince(ctx, c, room, p, mine); err != nil || missing == 0 {
			return err // a since pull fills no hole below our heads
		}
		return s.askGaps(ctx, c, room, p)
	}
	return s.reconcile(ctx, c, room, p)
}

// maxGapRounds bounds the get rounds one session spends on the ids the
// room's log misses (askGaps): each round asks for at most maxGetIDs, and
// a round that leaves the same ids missing ends them.
const maxGapRounds = 4

// fetchGaps is askGaps for a session whose heads round found nothing to
// pull while its log misses events (HeadsGap, read with the heads: a log
// that misses nothing costs the session nothing more): it claims the
// room's pull first.
func (s *Syncer) fetchGaps(ctx context.Context, c *conn, j syncJob) error {
	if !s.claimPull(j) {
		return nil // another pull of the room runs: this session runs again after it
	}
	defer s.endPull(j.room)
	return s.askGaps(ctx, c, j.room, j.peer)
}

// askGaps asks p by id, on the session's stream, for the events the room's
// log misses: referenced by events it holds or by waiting orphans, neither
// held nor waiting (crdt.Log.MissingIDs, those under held events first). A
// session with equal heads pulls nothing else, so a store that lost events
// below the heads (docs/operators.md, after an upgrade) is healed only so.
// The work is bounded per session (maxGapRounds rounds of at most
// maxGetIDs ids): a peer that lacks them answers done alone and the
// session ends; the next session, with any peer, asks again.
func (s *Syncer) askGaps(ctx context.Context, c *conn, room crdt.RoomID, p peer.ID) error {
	ref := RefOf(room)
	var last []crdt.EventID
	for range maxGapRounds {
		n, ids, err := s.engine.Gap(ctx, room, maxGetIDs)
		if err != nil || n == 0 || slices.Equal(ids, last) {
			return err
		}
		if err := c.send(&syncMsg{Op: opGet, Room: ref[:], IDs: idsToBytes(ids)}); err != nil {
			return err
		}
		if err := s.receiveEvents(ctx, c, room, p); err != nil {
			return err
		}
		last = ids
	}
	return nil
}

// pullSince asks for everything after `known` and ingests it page by page.
func (s *Syncer) pullSince(ctx context.Context, c *conn, room crdt.RoomID, p peer.ID, known []crdt.EventID) error {
	ref := RefOf(room)
	if err := c.send(&syncMsg{Op: opSince, Room: ref[:], IDs: idsToBytes(known)}); err != nil {
		return err
	}
	return s.receiveEvents(ctx, c, room, p)
}

// receiveEvents ingests event pages until the peer says done. Pages are
// read and verified on all cores while the previous page is being ingested.
func (s *Syncer) receiveEvents(ctx context.Context, c *conn, room crdt.RoomID, p peer.ID) error {
	type page struct {
		evs []*crdt.Event
		err error
	}
	pages := make(chan page, 2)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(pages)
		for {
			var pg page
			m, err := c.recv()
			switch {
			case err != nil:
				pg.err = err
			case m.Op == opDone:
				return
			case m.Op != opEvents:
				pg.err = fmt.Errorf("unexpected %q frame", m.Op)
			default:
				s.progressed(room)
				traceFetched(s.tracer, room, p, m.Events)
				if pg.evs, err = decodeParallel(m.Events); err != nil {
					TraceRejected(s.tracer, room, RejectSyncInvalid, 1)
					pg.err = fmt.Errorf("peer sent an invalid event: %w", err)
				}
			}
			select {
			case pages <- pg:
			case <-stop:
				return
			}
			if pg.err != nil {
				return
			}
		}
	}()
	for pg := range pages {
		if pg.err != nil {
			return pg.err
		}
		if s.tracer != nil {
			s.tracer.SyncRound(room, p)
		}
		if err := s.engine.Ingest(ctx, p, pg.evs); err != nil {
			return err
		}
		s.progressed(room)
	}
	return nil
}

// reconcile heals divergent histories with range-based set reconciliation
// over (depth, id) in a window below our highest event, then fetches what we
// need. If our copy still has a gap below the window, the window grows eight
// times and the round repeats, down to the whole history.
func (s *Syncer) reconcile(ctx context.Context, c *conn, room crdt.RoomID, p peer.ID) error {
	top, err := s.engine.MaxDepth(ctx, room)
	if err != nil {
		return err
	}
	ref := RefOf(room)
	for window := uint64(reconcileWindow); ; window *= 8 {
		minDepth := uint64(0)
		if top > window {
			minDepth = top - window
		}
		need, err := s.reconcileRange(ctx, c, room, minDepth)
		if err != nil {
			return err
		}
		for len(need) > 0 {
			n := min(len(need), maxGetIDs)
			if err := c.send(&syncMsg{Op: opGet, Room: ref[:], IDs: idsToBytes(need[:n])}); err != nil {
				return err
			}
			if err := s.receiveEvents(ctx, c, room, p); err != nil {
				return err
			}
			need = need[n:]
		}
		gap, _, err := s.engine.Gap(ctx, room, 0)
		if err != nil || gap == 0 || minDepth == 0 {
			return err
		}
	}
}

// reconcileWindow is the first reconciliation window, in DAG depth.
const reconcileWindow = 1024

// reconcileFrame bounds each reconciliation message.
const reconcileFrame = 256 << 10

// reconcileRange runs one RBSR session over events at or above minDepth and
// returns the ids the peer has and we lack, in ascending (depth, id) order.
func (s *Syncer) reconcileRange(ctx context.Context, c *conn, room crdt.RoomID, minDepth uint64) ([]crdt.EventID, error) {
	r, err := s.reconciler(ctx, room, minDepth)
	if err != nil {
		return nil, err
	}
	ref := RefOf(room)
	msg, err := r.Initiate()
	for rounds := 0; err == nil && msg != nil; rounds++ {
		if rounds > 64 {
			return nil, errors.New("reconciliation did not finish in 64 rounds")
		}
		if err = c.send(&syncMsg{Op: opReconcile, Room: ref[:], MinDepth: minDepth, Msg: msg}); err != nil {
			return nil, err
		}
		var resp *syncMsg
		if resp, err = c.recv(); err != nil {
			return nil, err
		}
		if resp.Op != opReconcile {
			return nil, fmt.Errorf("unexpected %q frame", resp.Op)
		}
		s.progressed(room)
		msg, err = r.Reconcile(resp.Msg)
	}
	if err != nil {
		return nil, err
	}
	var need []crdt.EventID
	for _, it := range r.Need() {
		if id, err := crdt.IDFromBytes([]byte(it.ID)); err == nil {
			need = append(need, id)
		}
	}
	return need, nil
}

// reconciler builds an RBSR party over the room's events at or above minDepth.
func (s *Syncer) reconciler(ctx context.Context, room crdt.RoomID, minDepth uint64) (*rbsr.Reconciler, error) {
	items, err := s.engine.Items(ctx, room, minDepth)
	if err != nil {
		return nil, err
	}
	rs := make([]rbsr.Item, len(items))
	for i, it := range items {
		rs[i] = rbsr.Item{Depth: it.Depth, ID: string(it.ID)}
	}
	return rbsr.New(rs, rbsr.Config{FrameSizeLimit: reconcileFrame})
}

// fetch gets specific events from a peer. When that fails or the peer
// does not send them all (a forwarder passes on events whose parents it
// lacks itself: section 2 of docs/protocol.md), the repair loop asks for
// what is still missing (with back-off, from this peer and the room's
// others): the log reports a missing event once, when the first orphan
// waits for it, so an unanswered get was asked again only once a heads
// announcement named a descendant, or at the anti-entropy round
// (simulations/README.md, fifth round).
func (s *Syncer) fetch(ctx context.Context, j syncJob) (err error) {
	var ids []crdt.EventID
	for k := j.get; len(k) > 0; {
		n := 36
		if len(k) < n {
			break
		}
		ids = append(ids, crdt.EventID(k[:n]))
		k = k[n:]
	}
	have, err := s.engine.Known(ctx, j.room, ids)
	if err != nil {
		return err
	}
	var want []crdt.EventID
	for i, h := range have {
		if !h {
			want = append(want, ids[i])
		}
	}
	if len(want) == 0 {
		return nil
	}
	if !s.claimPull(j) {
		return nil // another pull of the room runs: this fetch runs again after it
	}
	defer s.endPull(j.room)
	defer func() {
		if ctx.Err() != nil {
			return
		}
		have, kerr := s.engine.Known(ctx, j.room, want)
		if kerr != nil {
			return
		}
		var still []crdt.EventID
		for i, h := range have {
			if !h {
				still = append(still, want[i])
			}
		}
		if len(still) > 0 {
			s.Repair(j.room, still, j.peer)
		}
	}()
	if err := s.gate.Ensure(ctx, j.peer, j.room); err != nil {
		return err
	}
	ref := RefOf(j.room)
	c, err := s.open(ctx, j.peer)
	if err != nil {
		return err
	}
	defer c.st.Close()
	if err := c.send(&syncMsg{Op: opHeads, Room: ref[:], User: s.ident.User[:], Cert: s.ident.Cert}); err != nil {
		return err
	}
	if _, err := c.recv(); err != nil {
		return err
	}
	if err := c.send(&syncMsg{Op: opGet, Room: ref[:], IDs: idsToBytes(want)}); err != nil {
		return err
	}
	return s.receiveEvents(ctx, c, j.room, j.peer)
}

// decodeParallel decodes and verifies frames on all cores, the signatures
// in batches (crdt.DecodeBatch).
func decodeParallel(frames [][]byte) ([]*crdt.Event, error) {
	out, errs := crdt.DecodeBatch(frames)
	return out, errors.Join(errs...)
}

// handle serves one incoming sync stream.
func (s *Syncer) handle(st network.Stream) {
	p, release, ok := s.AdmitStream(st)
	if !ok {
		return
	}
	defer release()
	defer st.Close()
	traceSession(s.tracer, p, true)
	c := newConn(st)
	c.server = true
	ctx := context.Background()
	var room crdt.RoomID
	var sess serverSession
	for {
		m, err := c.recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				st.Reset()
			}
			return
		}
		if !s.Limiter(p).Allow() {
			c.send(&syncMsg{Op: opError, Err: "rate limited"})
			return
		}
		if err := s.serveOne(ctx, c, p, &room, &sess, m); err != nil {
			c.send(&syncMsg{Op: opError, Err: err.Error()})
			return
		}
	}
}

// serverSession is what a served stream remembers between requests.
type serverSession struct {
	resp     *rbsr.Reconciler // responder over the room's items at minDepth
	minDepth uint64
}

func (s *Syncer) serveOne(ctx context.Context, c *conn, p peer.ID, room *crdt.RoomID, sess *serverSession, m *syncMsg) error {
	if m.Op == opHeads {
		// An unknown room and a room the peer has not proved get the same
		// answer, so that neither reveals anything (docs/protocol.md 2.1).
		ref, ok := RefFromBytes(m.Room)
		id, kept := s.gate.RoomOf(ref)
		if !ok || !kept || !s.gate.Proved(p, ref) {
			return errRoomNotServed
		}
		if err := s.authorize(ctx, p, id, m); err != nil {
			return err
		}
		*room = id
		*sess = serverSession{}
		return s.serveHeads(ctx, c, p, id, m)
	}
	ref := RefOf(*room)
	if *room == "" || string(m.Room) != string(ref[:]) {
		return errors.New("start the session with heads for this room")
	}
	switch m.Op {
	case opSince:
		if len(m.IDs) > maxKnownIDs {
			return errors.New("too many known ids")
		}
		known, err := idsFromBytes(m.IDs)
		if err != nil {
			return err
		}
		ids, err := s.engine.Since(ctx, *room, known)
		if err != nil {
			return err
		}
		return s.sendEvents(c, *room, ids)
	case opReconcile:
		if sess.resp == nil || sess.minDepth != m.MinDepth {
			r, err := s.reconciler(ctx, *room, m.MinDepth)
			if err != nil {
				return err
			}
			sess.resp, sess.minDepth = r, m.MinDepth
		}
		reply, err := sess.resp.Reconcile(m.Msg)
		if err != nil {
			return err
		}
		return c.send(&syncMsg{Op: opReconcile, Room: ref[:], Msg: reply})
	case opGet:
		if len(m.IDs) > maxGetIDs {
			return errors.New("too many ids")
		}
		ids, err := idsFromBytes(m.IDs)
		if err != nil {
			return err
		}
		// Only the events of this room: a get may name others.
		held, err := s.engine.Known(ctx, *room, ids)
		if err != nil {
			return err
		}
		inRoom := ids[:0]
		for i, id := range ids {
			if held[i] {
				inRoom = append(inRoom, id)
			}
		}
		return s.sendEvents(c, *room, inRoom)
	}
	return fmt.Errorf("unknown op %q", m.Op)
}

// authorize checks the requester's certificate and whether it may pull room.
func (s *Syncer) authorize(ctx context.Context, p peer.ID, room crdt.RoomID, m *syncMsg) error {
	pub, err := p.ExtractPublicKey()
	if err != nil {
		return errors.New("peer key is not an Ed25519 device key")
	}
	raw, err := pub.Raw()
	if err != nil || len(raw) != 32 {
		return errors.New("peer key is not an Ed25519 device key")
	}
	device, _ := crdt.KeyFromBytes(raw)
	user, err := crdt.KeyFromBytes(m.User)
	if err != nil || !crdt.CheckDeviceCert(user, device, m.Cert) {
		return errors.New("bad device certificate")
	}
	if !s.engine.MayServe(ctx, room, user) {
		return errRoomNotServed
	}
	return nil
}

func (s *Syncer) serveHeads(ctx context.Context, c *conn, p peer.ID, room crdt.RoomID, m *syncMsg) error {
	if len(m.IDs) > maxKnownIDs {
		return errors.New("too many heads")
	}
	theirs, err := idsFromBytes(m.IDs)
	if err != nil {
		return err
	}
	heads, _, err := s.engine.Heads(ctx, room)
	if err != nil {
		return err
	}
	if len(heads) > maxKnownIDs {
		heads = heads[:maxKnownIDs]
	}
	known, err := s.engine.Known(ctx, room, theirs)
	if err != nil {
		return err
	}
	for _, k := range known {
		if !k { // the requester has events we lack: pull them too
			s.Trigger(room, p)
			break
		}
	}
	ref := RefOf(room)
	return c.send(&syncMsg{Op: opHeads, Room: ref[:], IDs: idsToBytes(heads), Known: known})
}

// frameGetter is implemented by stores that read the transport frames of
// many events in one transaction without decoding them (badgerstore),
// cutting them from a buffer they are given back on the next call.
type frameGetter interface {
	GetFramesInto(buf []byte, ids []crdt.EventID) ([][]byte, []byte, error)
}

// readFrames reads the frames of the held events of room among ids; a
// frameGetter cuts them from buf, which it returns for the next call.
func (s *Syncer) readFrames(room crdt.RoomID, ids []crdt.EventID, buf []byte) ([][]byte, []byte, error) {
	if fg, ok := s.store.(frameGetter); ok {
		return fg.GetFramesInto(buf, ids)
	}
	evs, err := crdt.GetMany(s.store, ids)
	if err != nil {
		return nil, buf, err
	}
	out := make([][]byte, 0, len(evs))
	for _, st := range evs {
		if st.Event.Room == room {
			out = append(out, st.Event.Encode())
		}
	}
	return out, buf, nil
}

// errRoomNotServed answers a request for a room that is unknown, unproven
// or not served to the peer alike.
var errRoomNotServed = errors.New("room not served to this peer")

// sendEvents streams the events of room (those held) in pages, then done:
// ids are the room's (Since, or a get's filtered by Known), so that a
// store with GetFramesInto sends their stored bytes without decoding them.
// The next chunk is read from the store, and its pages written
// (pageBuilder), while the current page is being sent; the frames' buffer
// and the pages' buffers are reused, so a catch-up does not clear new
// megabytes for every page.
func (s *Syncer) sendEvents(c *conn, room crdt.RoomID, ids []crdt.EventID) error {
	maxBytes := pageBytes
	if c.limited {
		maxBytes = limitedPageBytes
	}
	pages := make(chan []byte, 2)
	free := make(chan []byte, 4) // pages sent, their buffers to reuse: at most 2 queued, 1 being sent, 1 being written
	errc := make(chan error, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(pages)
		var frames []byte // the frames of a chunk, copied into its pages before the next chunk is read
		var pb pageBuilder
		next := func() { // a sent page's buffer, or one that holds a page without growing
			select {
			case b := <-free:
				pb = pageBuilder{buf: b[:0]}
			default:
				pb = pageBuilder{buf: make([]byte, 0, pageHeadRoom+maxBytes+9*pageEvents)}
			}
		}
		emit := func() bool {
			select {
			case pages <- pb.page():
			case <-stop:
				return false
			}
			next()
			return true
		}
		next()
		for len(ids) > 0 {
			n := min(len(ids), pageEvents)
			var chunk [][]byte
			var err error
			chunk, frames, err = s.readFrames(room, ids[:n], frames)
			ids = ids[n:]
			if err != nil {
				errc <- err
				return
			}
			for _, f := range chunk {
				if pb.count >= pageEvents || pb.count > 0 && pb.size+len(f) > maxBytes {
					if !emit() {
						return
					}
				}
				pb.add(f)
			}
		}
		if pb.count > 0 {
			emit()
		}
	}()
	for pg := range pages {
		if err := c.frames.sendEncoded(pg); err != nil { // a server's page: nothing for send's bookkeeping
			return err
		}
		select {
		case free <- pg:
		default:
		}
	}
	select {
	case err := <-errc:
		return err
	default:
	}
	return c.send(&syncMsg{Op: opDone})
}
