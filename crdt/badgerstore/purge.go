package badgerstore

import (
	"encoding/binary"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/parley-p2p/parley/crdt"
)

// layoutFolded is the badger user meta of an e/<id> entry of layout 2,
// whose value holds the whole event (appendEventValue). An e/<id> entry
// without it is of layout 1: the envelope alone, the meta under m/<id>
// and the body under b/<id> (see the package doc).
const layoutFolded byte = 1

// valueHasBody is the flag of a layout 2 value that holds a body.
const valueHasBody = 1

// appendEventValue appends the e/<id> value of layout 2: status (1 byte),
// flags (1 byte: valueHasBody), len(reason) (uvarint), reason,
// len(envelope) (uvarint), envelope, and the body (the rest) when body is
// not nil.
func appendEventValue(dst []byte, status crdt.Status, reason string, env, body []byte) []byte {
	var flags byte
	if body != nil {
		flags = valueHasBody
	}
	dst = append(dst, byte(status), flags)
	dst = binary.AppendUvarint(dst, uint64(len(reason)))
	dst = append(dst, reason...)
	dst = binary.AppendUvarint(dst, uint64(len(env)))
	dst = append(dst, env...)
	return append(dst, body...)
}

// eventValue is a layout 2 value split (slices of it).
type eventValue struct {
	status            crdt.Status
	reason, env, body []byte // body nil: none held
}

// splitEventValue splits an e/<id> value of layout 2.
func splitEventValue(v []byte) (eventValue, error) {
	var ev eventValue
	if len(v) < 2 || v[1]&^valueHasBody != 0 {
		return ev, errors.New("bad event value head")
	}
	ev.status = crdt.Status(v[0])
	hasBody := v[1]&valueHasBody != 0
	rest := v[2:]
	field := func() ([]byte, bool) {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return nil, false
		}
		f := rest[k : k+int(n) : k+int(n)] // no capacity: an append to the envelope must not write over the body
		rest = rest[k+int(n):]
		return f, true
	}
	var ok bool
	if ev.reason, ok = field(); !ok {
		return ev, errors.New("bad reason length in event value")
	}
	if ev.env, ok = field(); !ok {
		return ev, errors.New("bad envelope length in event value")
	}
	switch {
	case hasBody:
		ev.body = rest
	case len(rest) > 0:
		return ev, errors.New("bytes after an event value without a body")
	}
	return ev, nil
}

// envelopeOf is the envelope in the e/<id> value v of item, in either
// layout.
func envelopeOf(item *badger.Item, v []byte) ([]byte, error) {
	if item.UserMeta() != layoutFolded {
		return v, nil
	}
	ev, err := splitEventValue(v)
	return ev.env, err
}

// purgingKey (under l/) holds the e/<id> value without its body of an
// event whose body PurgeBody is removing, until it has.
func purgingKey(id crdt.EventID) []byte {
	return append([]byte("badgerstore/purging/"), id...)
}

// PurgeBody implements crdt.Store: the body is gone from reads at once and
// from the files before PurgeBody returns.
//
// A delete alone would leave the old value in the memtable's write-ahead
// file and in SSTables until some later compaction, so PurgeBody drops the
// key's prefix instead: badger flushes the memtable (whose file is then
// deleted) and rewrites every table holding the key without it. Values
// stay below the value threshold (an event is at most
// crdt.MaxKeyEventSize), so they never reach the value log. This blocks
// writes briefly; redactions are rare.
//
// In layout 2 the body is in the event's e/<id> value, so PurgeBody drops
// e/<id> and writes it again without the body. It first records the value
// to write under purgingKey, so that a crash between the two is finished
// at the next Open (finishPurges) instead of losing the event; and it
// holds mu, so that nothing reads or commits the event in between.
func (s *Store) PurgeBody(id crdt.EventID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var stripped []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(eventKey(id))
		if err != nil {
			return err
		}
		if item.UserMeta() != layoutFolded {
			return nil
		}
		return item.Value(func(v []byte) error {
			ev, err := splitEventValue(v)
			if err != nil {
				return fmt.Errorf("corrupt event %s: %w", id, err)
			}
			if ev.body != nil {
				stripped = appendEventValue(nil, ev.status, string(ev.reason), ev.env, nil)
			}
			return nil
		})
	})
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		return crdt.ErrNotFound
	case err != nil:
		return fmt.Errorf("badgerstore: purge body of %s: %w", id, err)
	case stripped == nil:
		// Layout 1 (or no body held). DropPrefix must see the key (it
		// skips prefixes with no live data), so it runs instead of a
		// delete, not after one.
		if err := s.db.DropPrefix(bodyKey(id)); err != nil {
			return fmt.Errorf("badgerstore: drop body of %s: %w", id, err)
		}
		return nil
	}
	if err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(localKey(purgingKey(id)), stripped)
	}); err != nil {
		return fmt.Errorf("badgerstore: purge body of %s: %w", id, err)
	}
	return s.finishPurge(id, stripped)
}

// finishPurge drops every version of e/<id> and writes stripped in its
// place, removing the record of the purge.
func (s *Store) finishPurge(id crdt.EventID, stripped []byte) error {
	if err := s.db.DropPrefix(eventKey(id)); err != nil {
		return fmt.Errorf("badgerstore: drop body of %s: %w", id, err)
	}
	err := s.db.Update(func(txn *badger.Txn) error {
		if err := txn.SetEntry(badger.NewEntry(eventKey(id), stripped).WithMeta(layoutFolded)); err != nil {
			return err
		}
		return txn.Delete(localKey(purgingKey(id)))
	})
	if err != nil {
		return fmt.Errorf("badgerstore: purge body of %s: %w", id, err)
	}
	return nil
}

// finishPurges finishes, at Open, the purges a crash interrupted.
func (s *Store) finishPurges() error {
	prefix := localKey(purgingKey(""))
	ks, err := s.keysUnder(prefix)
	if err != nil {
		return fmt.Errorf("badgerstore: find interrupted purges: %w", err)
	}
	for _, k := range ks {
		id := crdt.EventID(k)
		stripped, err := s.GetLocal(purgingKey(id))
		if err != nil {
			return fmt.Errorf("badgerstore: read interrupted purge: %w", err)
		}
		if err := s.finishPurge(id, stripped); err != nil {
			return err
		}
	}
	return nil
}
