package e2ee

import (
	"bytes"
	"fmt"
	"slices"
	"sync"

	"github.com/parley-p2p/parley/crdt"
)

// KeyStore keeps the epoch keys a node holds. Put hands the key over: the
// store destroys it on Destroy or DestroyRoom (overwriting the secret), so
// callers must not use a key after destroying it through the store.
// Implementations must be safe for concurrent use. Persistence (encrypted
// at rest, written before any event that uses the epoch is published) is
// the node's; MemKeyStore is the in-memory implementation.
type KeyStore interface {
	// Put stores k. Storing an epoch already held is a no-op.
	Put(k *EpochKey) error
	// Get returns the key of epoch id in room, or an error wrapping ErrNoKey.
	Get(room crdt.RoomID, id EpochID) (*EpochKey, error)
	// Epochs lists the epochs held for room, sorted.
	Epochs(room crdt.RoomID) []EpochID
	// Destroy forgets and overwrites one key; absent keys are no error.
	Destroy(room crdt.RoomID, id EpochID) error
	// DestroyRoom forgets and overwrites every key of room.
	DestroyRoom(room crdt.RoomID) error
}

// MemKeyStore is a KeyStore in memory. The zero value is not usable; use
// NewMemKeyStore.
type MemKeyStore struct {
	mu   sync.Mutex
	keys map[crdt.RoomID]map[EpochID]*EpochKey
}

var _ KeyStore = (*MemKeyStore)(nil)

// NewMemKeyStore makes an empty store.
func NewMemKeyStore() *MemKeyStore {
	return &MemKeyStore{keys: make(map[crdt.RoomID]map[EpochID]*EpochKey)}
}

// Put implements KeyStore.
func (s *MemKeyStore) Put(k *EpochKey) error {
	if k == nil || k.gone {
		return fmt.Errorf("%w: cannot store a destroyed key", ErrNoKey)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	room := s.keys[k.room]
	if room == nil {
		room = make(map[EpochID]*EpochKey)
		s.keys[k.room] = room
	}
	if _, ok := room[k.id]; !ok {
		room[k.id] = k
	}
	return nil
}

// Get implements KeyStore.
func (s *MemKeyStore) Get(room crdt.RoomID, id EpochID) (*EpochKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[room][id]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("%w: epoch %s not held", ErrNoKey, id)
}

// Epochs implements KeyStore.
func (s *MemKeyStore) Epochs(room crdt.RoomID) []EpochID {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]EpochID, 0, len(s.keys[room]))
	for id := range s.keys[room] {
		out = append(out, id)
	}
	slices.SortFunc(out, func(a, b EpochID) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// Destroy implements KeyStore.
func (s *MemKeyStore) Destroy(room crdt.RoomID, id EpochID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[room][id]; ok {
		k.Destroy()
		delete(s.keys[room], id)
		if len(s.keys[room]) == 0 {
			delete(s.keys, room)
		}
	}
	return nil
}

// DestroyRoom implements KeyStore.
func (s *MemKeyStore) DestroyRoom(room crdt.RoomID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.keys[room] {
		k.Destroy()
	}
	delete(s.keys, room)
	return nil
}
