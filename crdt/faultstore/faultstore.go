// Package faultstore wraps a crdt.Store and makes chosen writes fail, in the
// spirit of pebble's errorfs: an Injector decides, for each write (Commit,
// PurgeBody, and the node-local PutLocal and DeleteLocal), whether it fails
// with ErrInjected instead of reaching the wrapped store. A failed write
// changes nothing in the wrapped store, which is what a store's contract
// promises for a failed transaction. Reads always pass through.
//
// It is for tests: the engine and the conformance suite run through it. It
// does no I/O of its own and stays as pure as crdt (no clock; randomness
// only from a seed). Every Injector prints itself, so a failing test can say
// which faults it ran under.
package faultstore

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/parley-p2p/parley/crdt"
)

// ErrInjected is the error of every injected failure.
var ErrInjected = errors.New("faultstore: injected fault")

// OpKind is the kind of a write.
type OpKind uint8

// The writes an Injector sees.
const (
	OpCommit OpKind = iota + 1
	OpPurgeBody
	OpPutLocal
	OpDeleteLocal
)

func (k OpKind) String() string {
	switch k {
	case OpCommit:
		return "commit"
	case OpPurgeBody:
		return "purge"
	case OpPutLocal:
		return "put-local"
	case OpDeleteLocal:
		return "delete-local"
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// Op describes one write.
type Op struct {
	Kind   OpKind
	Room   crdt.RoomID  // OpCommit: the batch's room
	Event  crdt.EventID // OpPurgeBody: the event
	Key    []byte       // OpPutLocal, OpDeleteLocal: the local key
	Commit int          // OpCommit: 1 for the store's first Commit call, and so on
}

func (o Op) String() string {
	switch o.Kind {
	case OpCommit:
		return fmt.Sprintf("commit #%d of room %s", o.Commit, o.Room)
	case OpPurgeBody:
		return fmt.Sprintf("purge of %s", o.Event)
	default:
		return fmt.Sprintf("%s of key %q", o.Kind, o.Key)
	}
}

// Injector decides whether a write fails. The Store serializes calls to
// Fail, so an Injector may keep state without locking.
type Injector interface {
	Fail(op Op) bool
	fmt.Stringer
}

// NthCommit fails the nth Commit call (1-based), once.
func NthCommit(n int) Injector { return nthCommit(n) }

type nthCommit int

func (n nthCommit) Fail(op Op) bool { return op.Kind == OpCommit && op.Commit == int(n) }
func (n nthCommit) String() string  { return fmt.Sprintf("fail commit #%d", int(n)) }

// Probability fails each write with probability p, drawn from a generator
// seeded with seed (the same seed and the same writes give the same faults).
// The generator is splitmix64, so the package needs no math/rand.
func Probability(p float64, seed uint64) Injector {
	return &probability{p: p, seed: seed, state: seed}
}

type probability struct {
	p     float64
	seed  uint64
	state uint64
}

func (p *probability) Fail(Op) bool {
	p.state += 0x9e3779b97f4a7c15
	z := p.state
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	return float64(z>>11)/(1<<53) < p.p
}
func (p *probability) String() string {
	return fmt.Sprintf("fail writes with probability %g (seed %d)", p.p, p.seed)
}

// Room fails every Commit of room's events.
func Room(room crdt.RoomID) Injector { return roomInj{room} }

type roomInj struct{ room crdt.RoomID }

func (r roomInj) Fail(op Op) bool { return op.Kind == OpCommit && op.Room == r.room }
func (r roomInj) String() string  { return fmt.Sprintf("fail commits of room %s", r.room) }

// LocalPrefix fails every PutLocal and DeleteLocal of a key under prefix.
func LocalPrefix(prefix []byte) Injector { return localPrefix(prefix) }

type localPrefix string

func (p localPrefix) Fail(op Op) bool {
	return (op.Kind == OpPutLocal || op.Kind == OpDeleteLocal) && strings.HasPrefix(string(op.Key), string(p))
}
func (p localPrefix) String() string { return fmt.Sprintf("fail local writes under %q", string(p)) }

// Always fails every write (a full disk).
func Always() Injector { return always{} }

type always struct{}

func (always) Fail(Op) bool   { return true }
func (always) String() string { return "fail every write" }

// Store is a crdt.Store whose writes fail as its Injector decides. It is
// safe for concurrent use.
type Store struct {
	inner crdt.Store

	mu      sync.Mutex
	inj     Injector // nil: pass everything through
	commits int
	faults  []string // what was failed, for test output
}

var _ crdt.Store = (*Store)(nil)

// New wraps inner; inj may be nil (pass-through).
func New(inner crdt.Store, inj Injector) *Store { return &Store{inner: inner, inj: inj} }

// Inject replaces the injector (nil: pass-through from now on).
func (s *Store) Inject(inj Injector) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inj = inj
}

// Commits returns how many Commit calls the store has seen.
func (s *Store) Commits() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commits
}

// Faults lists the writes failed so far.
func (s *Store) Faults() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.faults...)
}

// String names the injector, for test output.
func (s *Store) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inj == nil {
		return "faultstore (pass-through)"
	}
	return "faultstore (" + s.inj.String() + ")"
}

// check counts op and returns ErrInjected (wrapped) when it must fail.
func (s *Store) check(op Op) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if op.Kind == OpCommit {
		s.commits++
		op.Commit = s.commits
	}
	if s.inj == nil || !s.inj.Fail(op) {
		return nil
	}
	s.faults = append(s.faults, op.String())
	return fmt.Errorf("%w: %s (%s)", ErrInjected, op, s.inj)
}

// Commit implements crdt.Store.
func (s *Store) Commit(b crdt.Batch) error {
	if err := s.check(Op{Kind: OpCommit, Room: b.Room}); err != nil {
		return err
	}
	return s.inner.Commit(b)
}

// PurgeBody implements crdt.Store.
func (s *Store) PurgeBody(id crdt.EventID) error {
	if err := s.check(Op{Kind: OpPurgeBody, Event: id}); err != nil {
		return err
	}
	return s.inner.PurgeBody(id)
}

// Get implements crdt.Store.
func (s *Store) Get(id crdt.EventID) (crdt.Stored, error) { return s.inner.Get(id) }

// Has implements crdt.Store.
func (s *Store) Has(id crdt.EventID) (bool, error) { return s.inner.Has(id) }

// Heads implements crdt.Store.
func (s *Store) Heads(room crdt.RoomID) ([]crdt.EventID, error) { return s.inner.Heads(room) }

// Rooms implements crdt.Store.
func (s *Store) Rooms() ([]crdt.RoomID, error) { return s.inner.Rooms() }

// Scan implements crdt.Store.
func (s *Store) Scan(room crdt.RoomID, from uint64, fn func(crdt.Stored) bool) error {
	return s.inner.Scan(room, from, fn)
}

// Close implements crdt.Store.
func (s *Store) Close() error { return s.inner.Close() }

// local is what crdt.MemStore and badgerstore.Store offer for node-local
// values (node.LocalStore).
type local interface {
	PutLocal(k, v []byte) error
	GetLocal(k []byte) ([]byte, error)
	DeleteLocal(k []byte) error
	ScanLocal(prefix []byte, fn func(k, v []byte) bool) error
}

var errNoLocal = errors.New("faultstore: the wrapped store keeps no local values")

func (s *Store) local() (local, error) {
	l, ok := s.inner.(local)
	if !ok {
		return nil, errNoLocal
	}
	return l, nil
}

// PutLocal stores a node-local value in the wrapped store.
func (s *Store) PutLocal(k, v []byte) error {
	l, err := s.local()
	if err != nil {
		return err
	}
	if err := s.check(Op{Kind: OpPutLocal, Key: k}); err != nil {
		return err
	}
	return l.PutLocal(k, v)
}

// GetLocal reads a node-local value from the wrapped store.
func (s *Store) GetLocal(k []byte) ([]byte, error) {
	l, err := s.local()
	if err != nil {
		return nil, err
	}
	return l.GetLocal(k)
}

// DeleteLocal removes a node-local value from the wrapped store.
func (s *Store) DeleteLocal(k []byte) error {
	l, err := s.local()
	if err != nil {
		return err
	}
	if err := s.check(Op{Kind: OpDeleteLocal, Key: k}); err != nil {
		return err
	}
	return l.DeleteLocal(k)
}

// ScanLocal lists node-local values of the wrapped store.
func (s *Store) ScanLocal(prefix []byte, fn func(k, v []byte) bool) error {
	l, err := s.local()
	if err != nil {
		return err
	}
	return l.ScanLocal(prefix, fn)
}
