package badgerstore

import (
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/parley-p2p/parley/crdt"
)

// Node-local data: values under l/<key> that belong to this node only and
// are never synced (the node keeps epoch secrets, sealed at rest, and the
// plaintext of what it decrypted there).

func localKey(k []byte) []byte { return append([]byte("l/"), k...) }

// PutLocal stores a node-local value.
func (s *Store) PutLocal(k, v []byte) error {
	return s.db.Update(func(txn *badger.Txn) error { return txn.Set(localKey(k), v) })
}

// GetLocal reads a node-local value; crdt.ErrNotFound when absent.
func (s *Store) GetLocal(k []byte) ([]byte, error) {
	var out []byte
	err := s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(localKey(k))
		if err != nil {
			return err
		}
		out, err = it.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, crdt.ErrNotFound
	}
	return out, err
}

// DeleteLocal removes a node-local value for real, as PurgeBody does: the
// key's prefix is dropped so that no older copy stays in the memtable's
// write-ahead file or in a table. Absent keys are no error.
func (s *Store) DeleteLocal(k []byte) error {
	if _, err := s.GetLocal(k); errors.Is(err, crdt.ErrNotFound) {
		return nil
	}
	if err := s.db.DropPrefix(localKey(k)); err != nil {
		return fmt.Errorf("badgerstore: drop local value: %w", err)
	}
	return nil
}

// ScanLocal calls fn with every node-local key under prefix (without the
// l/ space prefix) and its value, in key order, until fn returns false.
func (s *Store) ScanLocal(prefix []byte, fn func(k, v []byte) bool) error {
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: localKey(prefix), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if !fn(it.Item().KeyCopy(nil)[2:], v) {
				return nil
			}
		}
		return nil
	})
}

// WriteLocal applies many node-local writes in one badger write batch
// (split over transactions as it grows; a crash may leave a prefix of it
// applied). A delete is an ordinary one (a tombstone), not DeleteLocal's
// DropPrefix, which costs a memtable flush per key: it is for values that
// hold no plaintext, such as the search index's blind keys, whose older
// copies may stay in the store's files until compaction.
func (s *Store) WriteLocal(ws []crdt.LocalWrite) error {
	if len(ws) == 0 {
		return nil
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, w := range ws {
		var err error
		if w.Delete {
			err = wb.Delete(localKey(w.Key))
		} else {
			err = wb.Set(localKey(w.Key), w.Value)
		}
		if err != nil {
			return fmt.Errorf("badgerstore: local write: %w", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("badgerstore: local write: %w", err)
	}
	return nil
}
