package badgerstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

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

// envelopeOf is the envelope of the e/<id> value v of item, in any
// layout.
func (s *Store) envelopeOf(id crdt.EventID, item *badger.Item, v []byte) ([]byte, error) {
	switch item.UserMeta() {
	case layoutSegment:
		_, env, _, err := s.segBytes(id, v)
		return env, err
	case layoutFolded:
		ev, err := splitEventValue(v)
		return ev.env, err
	}
	return v, nil
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
//
// In layout 3 the body is in a segment file (segment.go), and PurgeBody
// overwrites it there with zeros (purgeSegment).
func (s *Store) PurgeBody(id crdt.EventID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var stripped []byte
	var seg *segValue
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(eventKey(id))
		if err != nil {
			return err
		}
		if item.UserMeta() == layoutSegment {
			return item.Value(func(raw []byte) error {
				v, err := splitSegValue(raw)
				if err != nil {
					return fmt.Errorf("corrupt event %s: %w", id, err)
				}
				v.reason = bytes.Clone(v.reason)
				seg = &v
				return nil
			})
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
	case seg != nil:
		return s.purgeSegment(id, *seg)
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
	return s.eachPurge(purgingKey, s.finishPurge)
}

// eachPurge calls finish with each event that has a record of an
// interrupted purge under record(id) and the record's value.
func (s *Store) eachPurge(record func(crdt.EventID) []byte, finish func(crdt.EventID, []byte) error) error {
	ks, err := s.keysUnder(localKey(record("")))
	if err != nil {
		return fmt.Errorf("badgerstore: find interrupted purges: %w", err)
	}
	for _, k := range ks {
		id := crdt.EventID(k)
		v, err := s.GetLocal(record(id))
		if err != nil {
			return fmt.Errorf("badgerstore: read interrupted purge: %w", err)
		}
		if err := finish(id, v); err != nil {
			return err
		}
	}
	return nil
}

// purgeSegment purges the body of an event of layout 3: in one
// transaction it rewrites the event's record without the body (its CRC
// then covers the envelope alone) and records the body's place under
// zeroingKey, syncs, then overwrites the body with zeros in its segment,
// fsyncs, and drops the record. A crash before the zeros are synced is
// finished at the next Open (finishZeroing).
func (s *Store) purgeSegment(id crdt.EventID, v segValue) error {
	if !v.hasBody {
		return nil
	}
	env := make([]byte, v.envLen)
	if err := s.seg.readAt(v.seg, v.off, env); err != nil {
		return fmt.Errorf("badgerstore: purge body of %s: %w", id, err)
	}
	body, err := s.recordPurgeSegment(id, v, env)
	if err != nil {
		return err
	}
	return s.finishZero(id, body)
}

// recordPurgeSegment is the first half of purgeSegment: the event's record
// without its body and the record of the purge, synced. It returns where
// the body is (segment, offset, length).
func (s *Store) recordPurgeSegment(id crdt.EventID, v segValue, env []byte) ([3]uint64, error) {
	body := [3]uint64{v.seg, v.off + v.envLen, v.bodyLen}
	v.hasBody, v.bodyLen, v.crc = false, 0, crc32.Checksum(env, castagnoli)
	err := s.db.Update(func(txn *badger.Txn) error {
		if err := txn.SetEntry(badger.NewEntry(eventKey(id), appendSegValue(nil, v)).WithMeta(layoutSegment)); err != nil {
			return err
		}
		return txn.Set(localKey(zeroingKey(id)), appendZeroing(body))
	})
	if err == nil {
		err = s.db.Sync()
	}
	if err != nil {
		return body, fmt.Errorf("badgerstore: purge body of %s: %w", id, err)
	}
	return body, nil
}

// splitZeroing reads a record of appendZeroing: segment, offset and
// length of a body, which is at most crdt.MaxKeyEventSize.
func splitZeroing(b []byte) ([3]uint64, error) {
	var z [3]uint64
	for i := range z {
		n, k := binary.Uvarint(b)
		if k <= 0 {
			return z, errors.New("bad number")
		}
		z[i], b = n, b[k:]
	}
	switch {
	case len(b) > 0:
		return z, errors.New("bytes after the record")
	case z[2] > crdt.MaxKeyEventSize || z[1] > 1<<62:
		return z, errors.New("body out of range")
	}
	return z, nil
}

// appendZeroing is the record of a purge of layout 3 (zeroingKey): the
// body's segment, offset and length, uvarints.
func appendZeroing(z [3]uint64) []byte {
	var b []byte
	for _, n := range z {
		b = binary.AppendUvarint(b, n)
	}
	return b
}

// finishZero overwrites a purged body (segment, offset, length) with
// zeros, syncs it and drops the record of the purge.
func (s *Store) finishZero(id crdt.EventID, z [3]uint64) error {
	if err := s.seg.zero(z[0], z[1], z[2]); err != nil {
		return fmt.Errorf("badgerstore: overwrite body of %s: %w", id, err)
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(localKey(zeroingKey(id))) }); err != nil {
		return fmt.Errorf("badgerstore: purge body of %s: %w", id, err)
	}
	return nil
}

// finishZeroing finishes, at Open, the purges of layout 3 a crash
// interrupted.
func (s *Store) finishZeroing() error {
	return s.eachPurge(zeroingKey, func(id crdt.EventID, raw []byte) error {
		z, err := splitZeroing(raw)
		if err != nil {
			return fmt.Errorf("badgerstore: record of an interrupted purge of %s: %w", id, err)
		}
		if s.seg == nil {
			return fmt.Errorf("badgerstore: interrupted purge of %s in an in-memory store", id)
		}
		return s.finishZero(id, z)
	})
}
