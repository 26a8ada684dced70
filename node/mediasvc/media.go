package mediasvc

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/media"
	"github.com/parley-p2p/parley/node/wire"
)

// Protocol fetches media blocks by CID.
//
// A stream carries a sequence of request/answer pairs, each one
// go-msgio varint frame of canonical CBOR (mediaMsg): the client sends
// {op: "get", cid}, the server answers {op: "block", cid, data},
// {op: "not_found", cid} or {op: "error", err} (and then closes the stream).
// The client closes its write side when it has nothing more to ask.
//
// Access: any connected peer may fetch any block it names. Blocks are
// ChaCha20-Poly1305 ciphertext addressed by their own hash; the file key
// travels only inside encrypted messages, so a block reveals nothing but its
// size to whoever can name its CID — and naming a CID already requires
// having read the message (or the manifest, itself only a list of
// ciphertext CIDs). Tying blocks to rooms would make every host and relay
// (blind hosts included) learn which blob belongs to which room, and would
// forbid fetching from any holder. A node asked for a block it lacks may
// pull it through from its other peers for a requester sharing a room with
// it (relay.go). What we bound instead is cost: at most
// MaxPeerStreams served streams per peer at once, a per-peer byte rate,
// an idle timeout per stream, requests of at most mediaMaxRequest octets
// and answers of at most mediaMaxFrame.
// A fetching node keeps within the stream cap (all its fetches together)
// and takes a new stream reset before its first answer for a busy peer, to
// ask again shortly, not for a misbehaving one.
const Protocol = protocol.ID("/parley/media/1.0.0")

// Limits of the media protocol.
const (
	mediaMaxFrame     = media.MaxBlockSize + 4<<10 // an answer: a block and its envelope
	mediaMaxRequest   = 1 << 10                    // a request: get and a CID
	Idle              = 30 * time.Second
	MaxPeerStreams    = 4
	mediaPeerRate     = 128 << 20 // bytes per second served to one peer ...
	mediaPeerBurst    = 8 << 20   // ... with this burst (more than one block)
	mediaFetchWorkers = 4
)

// Operations of the media protocol.
const (
	mediaOpGet      = "get"
	mediaOpBlock    = "block"
	mediaOpNotFound = "not_found"
	mediaOpError    = "error"
)

// mediaMsg is every frame of the media protocol.
type mediaMsg struct {
	Op   string `cbor:"op"`
	CID  []byte `cbor:"cid,omitempty"`
	Data []byte `cbor:"data,omitempty"`
	Err  string `cbor:"err,omitempty"`
}

// errMediaFrame: a frame that is not a canonical mediaMsg.
var errMediaFrame = errors.New("malformed media frame")

// decodeMediaMsg parses one frame strictly (codec.go); CID and Data
// alias b.
func decodeMediaMsg(b []byte) (*mediaMsg, error) {
	m, err := parseMediaMsg(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errMediaFrame, err)
	}
	switch m.Op {
	case mediaOpGet, mediaOpBlock, mediaOpNotFound, mediaOpError:
	default:
		return nil, fmt.Errorf("%w: unknown op %q", errMediaFrame, m.Op)
	}
	return m, nil
}

// parseMediaCID reads a CID of a kind the media store holds.
func parseMediaCID(b []byte) (cid.Cid, error) {
	c, err := cid.Cast(b)
	if err != nil {
		return cid.Undef, media.ErrBadCID
	}
	if err := media.VerifyBlock(c, nil); errors.Is(err, media.ErrBadCID) {
		return cid.Undef, err
	}
	return c, nil
}

// ErrNotFound: no connected peer holds a block of the blob.
var ErrNotFound = errors.New("mediasvc: media not found")

// Host is what the service needs of the libp2p host: a handler for its
// protocol, streams to peers, and the peers connected now. host.Host is
// one.
type Host interface {
	SetStreamHandler(protocol.ID, network.StreamHandler)
	RemoveStreamHandler(protocol.ID)
	NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error)
	Network() network.Network
}

// Service is the node's blob store and the media protocol: it serves blocks
// to peers and fetches blobs from them.
type Service struct {
	host  Host
	store media.BlobStore
	log   *slog.Logger

	*wire.PeerLimits // served streams and byte rate per peer

	fetchMu sync.Mutex             // guards fetching
	fetches map[string]*sync.Mutex // per root: one fetch at a time

	served atomic.Int64 // blocks served (tests)

	relay mediaRelay // pull-through (relay.go)

	slots streamSlots // streams this node opens to each peer

	arrivedMu sync.Mutex
	arrived   chan struct{} // guarded by arrivedMu: closed when a fetched block is stored; nil if nobody waits

	// gcMu keeps collection apart from the work that writes blocks no
	// message references yet: imports, fetches and reads of a fetch hold
	// it shared, a collection exclusively (gc.go).
	gcMu    sync.RWMutex
	now     func() time.Time     // the clock of the grace period (tests replace it)
	touchMu sync.Mutex           // guards touched
	touched map[string]time.Time // by root KeyString: when this node last added or fetched it
}

// New returns the media component on h and store. Nothing is served
// until Serve.
func New(h Host, store media.BlobStore, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Service{
		host: h, store: store, log: log,
		PeerLimits: wire.NewPeerLimits(MaxPeerStreams, mediaPeerRate, mediaPeerBurst),
		fetches:    map[string]*sync.Mutex{},
		now:        time.Now,
		touched:    map[string]time.Time{},
		relay:      newMediaRelay(),
	}
}

// Store returns the blob store.
func (m *Service) Store() media.BlobStore { return m.store }

// Serve answers the media protocol until ctx is done.
func (m *Service) Serve(ctx context.Context) error {
	m.host.SetStreamHandler(Protocol, m.handle)
	defer m.host.RemoveStreamHandler(Protocol)
	<-ctx.Done()
	return nil
}

// ---- serving ----

// handle serves one incoming media stream.
func (m *Service) handle(st network.Stream) {
	p, release, ok := m.AdmitStream(st)
	if !ok {
		return
	}
	defer release()
	defer st.Close()
	c := newMediaConn(st)
	c.limit = mediaMaxRequest
	for {
		req, err := c.recv()
		switch {
		case errors.Is(err, io.EOF):
			return
		case errors.Is(err, errMediaFrame):
			c.send(&mediaMsg{Op: mediaOpError, Err: "malformed request"})
			return
		case err != nil: // a reset, a timeout or a frame over the limit
			st.Reset()
			return
		}
		if err := m.serveOne(c, p, req); err != nil {
			c.send(&mediaMsg{Op: mediaOpError, Err: err.Error()})
			return
		}
	}
}

// serveOne answers one request; an error ends the stream.
func (m *Service) serveOne(c *mediaConn, p peer.ID, req *mediaMsg) error {
	if req.Op != mediaOpGet {
		return fmt.Errorf("unexpected op %q", req.Op)
	}
	id, err := parseMediaCID(req.CID)
	if err != nil {
		return errors.New("unsupported CID")
	}
	data, err := m.store.Get(id)
	if errors.Is(err, media.ErrNotFound) {
		if data = m.pullThrough(p, id); data != nil {
			err = nil
		}
	}
	switch {
	case errors.Is(err, media.ErrNotFound):
		return c.send(&mediaMsg{Op: mediaOpNotFound, CID: req.CID})
	case errors.Is(err, media.ErrCorrupt):
		m.log.Warn("media: a stored block is corrupt; not serving it", "cid", id, "err", err)
		return c.send(&mediaMsg{Op: mediaOpNotFound, CID: req.CID})
	case err != nil:
		m.log.Warn("media: read block", "cid", id, "err", err)
		return c.send(&mediaMsg{Op: mediaOpNotFound, CID: req.CID})
	}
	// Throttle per peer: wait for the byte budget, within the idle timeout.
	ctx, cancel := context.WithTimeout(context.Background(), Idle)
	defer cancel()
	if err := m.Limiter(p).WaitN(ctx, max(len(data), 1)); err != nil {
		return errors.New("rate limited")
	}
	m.served.Add(1)
	return c.send(&mediaMsg{Op: mediaOpBlock, CID: req.CID, Data: data})
}

// ---- fetching ----

// errPeerMisbehaved marks a peer that sent a bad block or frame: it is not
// asked again during this fetch.
var errPeerMisbehaved = errors.New("peer misbehaved")

// errPeerBusy: a peer reset a new stream before answering, as it does when
// it already serves us MaxPeerStreams streams (or has not yet seen
// our last ones close). It is asked again after a pause, and is not
// counted as misbehaving.
var errPeerBusy = errors.New("peer busy")

// Retries of a busy peer: mediaBusyRetries pauses, doubling from
// mediaBusyBackoff (2.5 s in all).
const (
	mediaBusyRetries = 8
	mediaBusyBackoff = 10 * time.Millisecond
)

// streamSlots caps the media streams this node opens to each peer, all
// fetches together, at what a peer serves to one peer at once
// (MaxPeerStreams): concurrent fetches from one holder take turns
// instead of having their streams refused.
type streamSlots struct {
	mu    sync.Mutex
	peers map[peer.ID]*slotSem // guarded by mu
}

type slotSem struct {
	sem  chan struct{}
	refs int // holders and waiters
}

func (s *streamSlots) ref(p peer.ID) *slotSem {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.peers == nil {
		s.peers = map[peer.ID]*slotSem{}
	}
	e := s.peers[p]
	if e == nil {
		e = &slotSem{sem: make(chan struct{}, MaxPeerStreams)}
		s.peers[p] = e
	}
	e.refs++
	return e
}

func (s *streamSlots) unref(p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.peers[p]; e != nil {
		if e.refs--; e.refs <= 0 {
			delete(s.peers, p)
		}
	}
}

// tryAcquire takes a slot for p if one is free.
func (s *streamSlots) tryAcquire(p peer.ID) bool {
	e := s.ref(p)
	select {
	case e.sem <- struct{}{}:
		return true
	default:
		s.unref(p)
		return false
	}
}

// acquire waits for a slot for p.
func (s *streamSlots) acquire(ctx context.Context, p peer.ID) error {
	e := s.ref(p)
	select {
	case e.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		s.unref(p)
		return ctx.Err()
	}
}

// release gives back a slot taken for p.
func (s *streamSlots) release(p peer.ID) {
	s.mu.Lock()
	e := s.peers[p]
	s.mu.Unlock()
	if e != nil {
		<-e.sem
		s.unref(p)
	}
}

// fetchSession is one worker's streams to the peers it asked; each holds
// one of the node's stream slots for its peer.
type fetchSession struct {
	m     *Service
	conns map[peer.ID]*mediaConn
}

func (s *fetchSession) close() {
	for p, c := range s.conns {
		c.st.CloseWrite()
		c.st.Close()
		delete(s.conns, p)
		s.m.slots.release(p)
	}
}

func (s *fetchSession) drop(p peer.ID) {
	if c := s.conns[p]; c != nil {
		c.st.Reset()
		delete(s.conns, p)
		s.m.slots.release(p)
	}
}

// open opens a stream to p once a slot for p is free. The session's other
// streams are idle (one worker uses it): it closes them before waiting, so
// that no worker holds a slot while it waits for another.
func (s *fetchSession) open(ctx context.Context, p peer.ID) (*mediaConn, error) {
	if !s.m.slots.tryAcquire(p) {
		s.close()
		if err := s.m.slots.acquire(ctx, p); err != nil {
			return nil, err
		}
	}
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	st, err := s.m.host.NewStream(network.WithAllowLimitedConn(octx, "media"), p, Protocol)
	cancel()
	if err != nil {
		s.m.slots.release(p)
		return nil, err
	}
	c := newMediaConn(st)
	s.conns[p] = c
	return c, nil
}

// get asks p for block id. It returns (nil, nil) if p does not hold it,
// and the block unverified otherwise. A busy peer is asked again after a
// pause, a few times.
func (s *fetchSession) get(ctx context.Context, p peer.ID, id cid.Cid) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		data, err := s.ask(ctx, p, id)
		if !errors.Is(err, errPeerBusy) || attempt == mediaBusyRetries {
			return data, err
		}
		t := time.NewTimer(mediaBusyBackoff << attempt)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// ask is one request and its answer.
func (s *fetchSession) ask(ctx context.Context, p peer.ID, id cid.Cid) ([]byte, error) {
	c := s.conns[p]
	if c == nil {
		var err error
		if c, err = s.open(ctx, p); err != nil {
			return nil, err
		}
	}
	// Abort the exchange when ctx ends.
	stop := context.AfterFunc(ctx, func() { c.st.Reset() })
	defer stop()
	if err := c.send(&mediaMsg{Op: mediaOpGet, CID: id.Bytes()}); err != nil {
		s.drop(p)
		return nil, err
	}
	ans, err := c.recv()
	if err != nil {
		s.drop(p)
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case c.frames == 0 && !errors.Is(err, errMediaFrame):
			return nil, fmt.Errorf("%w: %v", errPeerBusy, err)
		}
		return nil, fmt.Errorf("%w: %v", errPeerMisbehaved, err)
	}
	switch ans.Op {
	case mediaOpNotFound:
		if string(ans.CID) != string(id.Bytes()) {
			s.drop(p)
			return nil, fmt.Errorf("%w: answer for another CID", errPeerMisbehaved)
		}
		return nil, nil
	case mediaOpBlock:
		if string(ans.CID) != string(id.Bytes()) {
			s.drop(p)
			return nil, fmt.Errorf("%w: answer for another CID", errPeerMisbehaved)
		}
		if len(ans.Data) > media.MaxBlockSize {
			s.drop(p)
			return nil, fmt.Errorf("%w: %v", errPeerMisbehaved, media.ErrTooLarge)
		}
		// The caller verifies the block: BlobStore.Put does.
		return ans.Data, nil
	case mediaOpError:
		s.drop(p)
		return nil, fmt.Errorf("peer: %s", ans.Err)
	}
	s.drop(p)
	return nil, fmt.Errorf("%w: unexpected op %q", errPeerMisbehaved, ans.Op)
}

// fetchState is shared by the workers of one fetch.
type fetchState struct {
	mu    sync.Mutex
	bad   map[peer.ID]bool // guarded by mu: misbehaved during this fetch
	peers []peer.ID        // connected peers, sorted, at the start
}

func (f *fetchState) candidates(offset int) []peer.ID {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []peer.ID
	n := len(f.peers)
	for i := range n {
		p := f.peers[(i+offset)%n]
		if !f.bad[p] {
			out = append(out, p)
		}
	}
	return out
}

func (f *fetchState) markBad(p peer.ID) {
	f.mu.Lock()
	f.bad[p] = true
	f.mu.Unlock()
}

// fetchBlock gets block id from the first candidate peer that has it,
// verifies it and stores it (Put verifies).
func (m *Service) fetchBlock(ctx context.Context, s *fetchSession, f *fetchState, offset int, id cid.Cid) error {
	var errs []error
	for _, p := range f.candidates(offset) {
		data, err := s.get(ctx, p, id)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case errors.Is(err, errPeerMisbehaved):
			m.log.Warn("media: rejected a block from a peer", "peer", p, "cid", id, "err", err)
			f.markBad(p)
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		case data == nil:
			continue
		}
		// Put verifies the block against its CID (the BlobStore contract):
		// one hash of the block for verification and storage.
		err = m.store.Put(id, data)
		if errors.Is(err, media.ErrMismatch) || errors.Is(err, media.ErrTooLarge) {
			s.drop(p)
			err = fmt.Errorf("%w: %v", errPeerMisbehaved, err)
			m.log.Warn("media: rejected a block from a peer", "peer", p, "cid", id, "err", err)
			f.markBad(p)
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		if err != nil {
			return fmt.Errorf("store block %s: %w", id, err)
		}
		m.blockArrived()
		return nil
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: block %s (%v)", ErrNotFound, id, errors.Join(errs...))
	}
	return fmt.Errorf("%w: block %s", ErrNotFound, id)
}

// Fetch makes the blob root complete in the store: it fetches the root
// (the manifest of a multi-block blob), then every block still missing,
// from the connected peers (each block from the first that has it; a peer
// that sends a block not matching its CID is not asked again during this
// fetch). Blocks already held are skipped, so a fetch interrupted by an
// error or ctx resumes where it stopped. Each block is verified against
// its CID as it is stored (BlobStore.Put rejects a mismatch); memory holds
// at most one block per worker, whatever the size of the blob.
func (m *Service) Fetch(ctx context.Context, root cid.Cid) error {
	m.gcMu.RLock()
	defer m.gcMu.RUnlock()
	return m.fetch(ctx, root)
}

// fetch is Fetch; the caller holds gcMu shared.
func (m *Service) fetch(ctx context.Context, root cid.Cid) error {
	m.touch(root)
	defer m.touch(root)
	if err := media.VerifyBlock(root, nil); errors.Is(err, media.ErrBadCID) {
		return err
	}
	// One fetch per root at a time: concurrent callers wait and then find
	// the blocks already held.
	m.fetchMu.Lock()
	lock := m.fetches[root.KeyString()]
	if lock == nil {
		lock = &sync.Mutex{}
		m.fetches[root.KeyString()] = lock
	}
	m.fetchMu.Unlock()
	lock.Lock()
	defer func() {
		lock.Unlock()
		m.fetchMu.Lock()
		if m.fetches[root.KeyString()] == lock {
			delete(m.fetches, root.KeyString())
		}
		m.fetchMu.Unlock()
	}()

	peers := slices.Clone(m.host.Network().Peers())
	slices.Sort(peers)
	f := &fetchState{bad: map[peer.ID]bool{}, peers: peers}
	for round := 0; ; round++ {
		missing, err := media.Missing(m.store, root)
		if err != nil {
			return err
		}
		if len(missing) == 0 {
			return nil
		}
		if round >= 2 { // root, then blocks: a third round means a bug
			return fmt.Errorf("%w: %d blocks still missing", ErrNotFound, len(missing))
		}
		if len(peers) == 0 {
			return fmt.Errorf("%w: %s is not held here and no peer is connected", ErrNotFound, root)
		}
		if err := m.fetchAll(ctx, f, missing); err != nil {
			return err
		}
	}
}

// fetchAll fetches blocks with a few workers, each with its own session
// (its streams to the peers it asked), closed when the worker is done so
// that concurrent fetches get the stream slots.
func (m *Service) fetchAll(ctx context.Context, f *fetchState, blocks []cid.Cid) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan cid.Cid)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	workers := min(mediaFetchWorkers, len(blocks))
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := &fetchSession{m: m, conns: map[peer.ID]*mediaConn{}}
			defer s.close()
			for id := range jobs {
				if err := m.fetchBlock(ctx, s, f, w, id); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
			}
		}()
	}
feed:
	for _, id := range blocks {
		select {
		case jobs <- id:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// blockArrived wakes whoever waits for a fetched block (fetchingStore).
func (m *Service) blockArrived() {
	m.arrivedMu.Lock()
	if m.arrived != nil {
		close(m.arrived)
		m.arrived = nil
	}
	m.arrivedMu.Unlock()
}

// arrivals returns a channel closed when the next fetched block is stored.
func (m *Service) arrivals() <-chan struct{} {
	m.arrivedMu.Lock()
	defer m.arrivedMu.Unlock()
	if m.arrived == nil {
		m.arrived = make(chan struct{})
	}
	return m.arrived
}

// errFetchEnded: a block was read from a fetchingStore after its fetch
// ended without it.
var errFetchEnded = errors.New("mediasvc: the fetch ended before the block arrived")

// fetchingStore is the node's store seen by a reader that runs alongside a
// fetch: a Get of a block not held yet waits until the fetch stores it, or
// fails once the fetch has ended.
type fetchingStore struct {
	media.BlobStore
	m     *Service
	ended chan struct{}
	err   error // the fetch's outcome, set before ended is closed
}

// awaitFetch returns the store view of a fetch to come; call end with the
// fetch's outcome.
func (m *Service) awaitFetch() *fetchingStore {
	return &fetchingStore{BlobStore: m.store, m: m, ended: make(chan struct{})}
}

func (s *fetchingStore) end(err error) {
	s.err = err
	close(s.ended)
}

// Get implements media.BlobStore, waiting for blocks being fetched.
func (s *fetchingStore) Get(c cid.Cid) ([]byte, error) {
	for {
		arrived := s.m.arrivals()
		data, err := s.BlobStore.Get(c)
		if !errors.Is(err, media.ErrNotFound) {
			return data, err
		}
		select {
		case <-arrived:
		case <-s.ended:
			data, err := s.BlobStore.Get(c)
			if !errors.Is(err, media.ErrNotFound) {
				return data, err
			}
			if s.err != nil {
				return nil, fmt.Errorf("%w: %w", errFetchEnded, s.err)
			}
			return nil, errFetchEnded
		}
	}
}

// KeyString encodes a file key for JSON and for CID#KEY links:
// unpadded URL-safe base64.
func KeyString(k media.FileKey) string { return base64.RawURLEncoding.EncodeToString(k.Bytes()) }

// ParseKey reads a file key in base64, URL-safe or standard, padded or
// not.
func ParseKey(s string) (media.FileKey, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "=")
	s = strings.NewReplacer("+", "-", "/", "_").Replace(s)
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return media.FileKey{}, errorf(api.KindInvalid, "the media key is not base64: %v", err)
	}
	k, err := media.FileKeyFromBytes(b)
	if err != nil {
		return media.FileKey{}, errorf(api.KindInvalid, "bad media key: %v", err)
	}
	return k, nil
}
