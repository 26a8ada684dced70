// Package badgertest damages badgerstore stores the way older versions
// could, for tests of the repair and of the healing after it (node and
// e2e tests). Open the store only after the damage is done.
package badgertest

import (
	"bytes"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/parley-p2p/parley/crdt"
)

// StoreInPart leaves event id in the closed badger store in dir as the
// split commit before 91091ec could: its e/<id> key only (every other key
// ending in the id dropped), in a store not yet repaired (the
// marker l/badgerstore/repaired-partial-events dropped), so that the next
// Open removes it and the restored log counts it missing.
func StoreInPart(dir string, id crdt.EventID) error {
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		return fmt.Errorf("badgertest: open: %w", err)
	}
	defer db.Close()
	env := append([]byte("e/"), id...)
	var drop [][]byte
	err = db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.PrefetchValues = false
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if k := it.Item().Key(); bytes.HasSuffix(k, []byte(id)) && !bytes.Equal(k, env) {
				drop = append(drop, it.Item().KeyCopy(nil))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("badgertest: scan: %w", err)
	}
	if len(drop) < 1 { // its depth key at least (layout 2 keeps the rest in e/<id>)
		return fmt.Errorf("badgertest: %d keys of event %s found, want at least 1", len(drop), id)
	}
	drop = append(drop, []byte("l/badgerstore/repaired-partial-events"))
	err = db.Update(func(txn *badger.Txn) error {
		for _, k := range drop {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("badgertest: drop keys: %w", err)
	}
	return nil
}
