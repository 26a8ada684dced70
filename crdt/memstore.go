package crdt

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// MemStore is a Store held in memory, for tests and simulations. It is safe
// for concurrent use. Events are immutable, so Get hands out the stored
// *Event itself.
type MemStore struct {
	mu     sync.RWMutex
	events map[EventID]Stored
	rooms  map[RoomID]*memRoom
	local  map[string][]byte // node-local values (PutLocal), never synced
	closed bool
	frozen bool      // Freeze was called: events and rooms never change
	base   *MemStore // frozen, read through (NewMemStoreOver); nil: none
}

type memRoom struct {
	heads  map[EventID]struct{}
	index  []Item // every event of the room; index[:sorted] is in order
	sorted int
	base   *memRoom // the frozen base's room: its index comes first
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	return &MemStore{events: make(map[EventID]Stored), rooms: make(map[RoomID]*memRoom), local: make(map[string][]byte)}
}

var errClosed = errors.New("crdt: store closed")

// CheckBatch returns an error when b cannot be committed as a whole: an entry
// without an event, or an event of another room. Stores call it before
// writing anything.
func CheckBatch(b Batch) error {
	for i, s := range b.Events {
		if s.Event == nil {
			return fmt.Errorf("crdt: batch entry %d has no event", i)
		}
		if s.Event.Room != b.Room {
			return fmt.Errorf("crdt: batch of room %s holds event %s of room %s", b.Room, s.Event.ID, s.Event.Room)
		}
		if s.Status != StatusAccepted && s.Status != StatusRejected {
			return fmt.Errorf("crdt: event %s has status %d", s.Event.ID, s.Status)
		}
	}
	return nil
}

// Commit implements Store.
func (m *MemStore) Commit(b Batch) error {
	if err := CheckBatch(b); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errClosed
	}
	if m.frozen {
		return errFrozen
	}
	r := m.rooms[b.Room]
	if r == nil && (len(b.Events) > 0 || len(b.AddHeads) > 0) {
		r = &memRoom{heads: make(map[EventID]struct{})}
		m.rooms[b.Room] = r
	}
	if r == nil {
		return nil
	}
	for _, s := range b.Events {
		if _, ok := m.event(s.Event.ID); ok {
			continue
		}
		m.events[s.Event.ID] = s
		r.index = append(r.index, Item{s.Event.Depth, s.Event.ID})
	}
	for _, id := range b.RemoveHeads {
		delete(r.heads, id)
	}
	for _, id := range b.AddHeads {
		r.heads[id] = struct{}{}
	}
	return nil
}

// Get implements Store.
func (m *MemStore) Get(id EventID) (Stored, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return Stored{}, errClosed
	}
	s, ok := m.event(id)
	if !ok {
		return Stored{}, ErrNotFound
	}
	return s, nil
}

// Has implements Store.
func (m *MemStore) Has(id EventID) (bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return false, errClosed
	}
	_, ok := m.event(id)
	return ok, nil
}

// Heads implements Store.
func (m *MemStore) Heads(room RoomID) ([]EventID, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, errClosed
	}
	r := m.rooms[room]
	if r == nil {
		return nil, nil
	}
	out := make([]EventID, 0, len(r.heads))
	for id := range r.heads {
		out = append(out, id)
	}
	slices.Sort(out)
	return out, nil
}

// Rooms implements Store.
func (m *MemStore) Rooms() ([]RoomID, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, errClosed
	}
	var out []RoomID
	for id, r := range m.rooms {
		if len(r.index) > 0 || r.base != nil {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Scan implements Store. fn runs without the store's lock held, so it may
// call the store.
func (m *MemStore) Scan(room RoomID, from uint64, fn func(Stored) bool) error {
	items, err := m.scanItems(room, from)
	if err != nil {
		return err
	}
	for _, it := range items {
		m.mu.RLock()
		s, ok := m.event(it.ID)
		m.mu.RUnlock()
		if ok && !fn(s) {
			return nil
		}
	}
	return nil
}

func (m *MemStore) scanItems(room RoomID, from uint64) ([]Item, error) {
	m.mu.Lock() // sorting the index mutates it
	defer m.mu.Unlock()
	if m.closed {
		return nil, errClosed
	}
	r := m.rooms[room]
	if r == nil {
		return nil, nil
	}
	if r.sorted < len(r.index) {
		slices.SortFunc(r.index, cmpItem)
		r.sorted = len(r.index)
	}
	i, _ := slices.BinarySearchFunc(r.index, Item{Depth: from}, cmpItem)
	if r.base == nil {
		return slices.Clone(r.index[i:]), nil
	}
	b := r.base.index
	j, _ := slices.BinarySearchFunc(b, Item{Depth: from}, cmpItem)
	return mergeItems(b[j:], r.index[i:]), nil
}

// PurgeBody implements Store.
func (m *MemStore) PurgeBody(id EventID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errClosed
	}
	if m.frozen {
		return errFrozen
	}
	s, ok := m.event(id)
	if !ok {
		return ErrNotFound
	}
	s.Event = s.Event.WithoutBody()
	m.events[id] = s
	return nil
}

// Close implements Store. Later calls fail.
func (m *MemStore) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

// Node-local values, as badgerstore keeps them under l/: the node's own data
// that is never synced (a node's end-to-end encryption keeps its epoch
// secrets and plaintext there).

// PutLocal stores a node-local value.
func (m *MemStore) PutLocal(k, v []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errClosed
	}
	m.local[string(k)] = bytes.Clone(v)
	return nil
}

// GetLocal reads a node-local value; ErrNotFound when absent.
func (m *MemStore) GetLocal(k []byte) ([]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, errClosed
	}
	v, ok := m.local[string(k)]
	if !ok {
		return nil, ErrNotFound
	}
	return bytes.Clone(v), nil
}

// DeleteLocal removes a node-local value; absent keys are no error.
func (m *MemStore) DeleteLocal(k []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errClosed
	}
	delete(m.local, string(k))
	return nil
}

// ScanLocal calls fn with every node-local key under prefix and its value,
// in key order, until fn returns false. fn may use the store.
func (m *MemStore) ScanLocal(prefix []byte, fn func(k, v []byte) bool) error {
	m.mu.RLock()
	if m.closed {
		m.mu.RUnlock()
		return errClosed
	}
	var keys []string
	for k := range m.local {
		if strings.HasPrefix(k, string(prefix)) {
			keys = append(keys, k)
		}
	}
	m.mu.RUnlock()
	slices.Sort(keys)
	for _, k := range keys {
		v, err := m.GetLocal([]byte(k))
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if !fn([]byte(k), v) {
			return nil
		}
	}
	return nil
}

// LocalWrite is one write of WriteLocal: a node-local value to set, or
// with Delete, a key to remove.
type LocalWrite struct {
	Key, Value []byte
	Delete     bool
}

// WriteLocal applies many node-local writes at once, in order. Unlike
// DeleteLocal in badgerstore, a delete here is an ordinary one: it is for
// values that hold no plaintext (the search index's blind keys).
func (m *MemStore) WriteLocal(ws []LocalWrite) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errClosed
	}
	for _, w := range ws {
		if w.Delete {
			delete(m.local, string(w.Key))
		} else {
			m.local[string(w.Key)] = bytes.Clone(w.Value)
		}
	}
	return nil
}
