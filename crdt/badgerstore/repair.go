package badgerstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/parley-p2p/parley/crdt"
)

// Repair of events stored in part (docs/design.md §2). Before the split
// commit wrote whole events (commit, 91091ec), a transaction that filled up
// in the middle of an event was committed with a prefix of the event's
// keys (in the order of layout 1, the only one then: envelope, meta,
// depth index, chain index, room, body), and the rest was skipped as held. Such an event is held by
// Has and served by GetFrames, but missing from Scan (so from the log
// restored at start-up) or from the (device, seq) index, and its body is
// gone; sync never fetches it again, since the node holds it.
//
// repairPartial runs once per store, at Open, and records that it ran
// under repairedKey (a new store is recorded at its first Open, its scan
// being empty). The scan reads keys only; the envelope of a damaged event
// is read to find its index and head keys. An event whose meta or depth
// key is missing (so that Scan and the restored log never saw it) is
// removed, all of its keys: it is not held, so an event fetched for it
// (crdt.Log.Restore counts it missing where a held event names it) is
// written whole, body included, where the old store skipped it as held.
// An event with its meta and depth keys (in Scan, so in the restored log
// and room state) and without its chain key gets its chain and room keys
// back from its envelope (repairEvent says why it is not removed).
//
// An event with all those keys and no body is left alone: a body purged
// by PurgeBody leaves no marker, so a body the split lost looks the same.
//
// Only stores of layout 1 can be damaged so, and the repair runs before
// the first write of layout 2; an event of layout 2 (its meta in its e/
// value, no chain key) is still judged by its depth key alone.

// repairedKey is the node-local key (under l/) that records the repair.
var repairedKey = []byte("badgerstore/repaired-partial-events")

// repairStats counts what repairPartial did.
type repairStats struct {
	Events  int // events with an envelope key
	Removed int // events without their meta or depth key, removed
	Rebuilt int // events given back their missing index keys
	Left    int // left as they are: envelope or meta does not decode; create event without meta
}

// errUnreadable: a damaged event's envelope or meta does not decode.
var errUnreadable = errors.New("unreadable")

// repairPartial repairs the events stored in part, unless it ran before,
// and records that it ran.
func (s *Store) repairPartial() (repairStats, error) {
	var st repairStats
	if _, err := s.GetLocal(repairedKey); err == nil {
		return st, nil
	} else if !errors.Is(err, crdt.ErrNotFound) {
		return st, fmt.Errorf("badgerstore: read repair marker: %w", err)
	}
	damaged, n, err := s.findPartial()
	st.Events = n
	if err != nil {
		return st, fmt.Errorf("badgerstore: find events stored in part: %w", err)
	}
	for _, d := range damaged {
		removed, rebuilt, err := s.repairEvent(d)
		if errors.Is(err, errUnreadable) {
			st.Left++ // as it was: the store would not open for it
			continue
		}
		if err != nil {
			return st, fmt.Errorf("badgerstore: repair event stored in part: %w", err)
		}
		switch {
		case rebuilt:
			st.Rebuilt++
		case removed:
			st.Removed++
		default:
			st.Left++
		}
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(localKey(repairedKey), nil) }); err != nil {
		return st, fmt.Errorf("badgerstore: record repair: %w", err)
	}
	if len(damaged) > 0 {
		if err := s.db.Sync(); err != nil {
			return st, fmt.Errorf("badgerstore: sync repair: %w", err)
		}
		s.opts.Logger.Warn("badgerstore: repaired events stored in part by an older version",
			"events", st.Events, "removed", st.Removed, "rebuilt", st.Rebuilt, "left", st.Left)
	}
	return st, nil
}

// partial is an event whose envelope is held and some of whose meta,
// depth and chain keys are not.
type partial struct {
	id                 crdt.EventID
	meta, depth, chain bool
	folded             bool // layout 2 or 3: the meta is in the e/ value, and there is no chain key
}

// findPartial lists the events stored in part and counts the events held
// (their envelopes). It reads keys only: the ids under d/ and a/ (the
// last idLen bytes of each key), sorted, then the e/ and m/ keys, which
// are in id order, merged with them.
func (s *Store) findPartial() ([]partial, int, error) {
	var out []partial
	n := 0
	err := s.db.View(func(txn *badger.Txn) error {
		depth, err := indexIDs(txn, key('d'))
		if err != nil {
			return err
		}
		chain, err := indexIDs(txn, key('a'))
		if err != nil {
			return err
		}
		ev := keyIter(txn, key('e'))
		defer ev.Close()
		meta := keyIter(txn, key('m'))
		defer meta.Close()
		meta.Rewind()
		di, ci := 0, 0
		for ev.Rewind(); ev.Valid(); ev.Next() {
			id := ev.Item().Key()[2:]
			if len(id) != idLen {
				continue // not an event's (Get and Has never name it)
			}
			n++
			for meta.Valid() && bytes.Compare(meta.Item().Key()[2:], id) < 0 {
				meta.Next()
			}
			folded := ev.Item().UserMeta() != 0 // layout 2 or 3: the meta is in the e/ value
			hasMeta := folded || meta.Valid() && bytes.Equal(meta.Item().Key()[2:], id)
			hasDepth, hasChain := false, false
			di, hasDepth = advance(depth, di, id)
			ci, hasChain = advance(chain, ci, id)
			if !hasMeta || !hasDepth || !hasChain && !folded {
				out = append(out, partial{id: crdt.EventID(bytes.Clone(id)), meta: hasMeta, depth: hasDepth, chain: hasChain, folded: folded})
			}
		}
		return nil
	})
	return out, n, err
}

func keyIter(txn *badger.Txn, prefix []byte) *badger.Iterator {
	o := badger.DefaultIteratorOptions
	o.PrefetchValues = false
	o.Prefix = prefix
	return txn.NewIterator(o)
}

// indexIDs returns the ids at the end of the keys under prefix, sorted.
func indexIDs(txn *badger.Txn, prefix []byte) ([][idLen]byte, error) {
	it := keyIter(txn, prefix)
	defer it.Close()
	var ids [][idLen]byte
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		if len(k) < len(prefix)+idLen {
			continue // names no event
		}
		ids = append(ids, [idLen]byte(k[len(k)-idLen:]))
	}
	slices.SortFunc(ids, func(a, b [idLen]byte) int { return bytes.Compare(a[:], b[:]) })
	return ids, nil
}

// advance moves i past the ids below id and reports whether ids[i] is id.
func advance(ids [][idLen]byte, i int, id []byte) (int, bool) {
	for i < len(ids) && bytes.Compare(ids[i][:], id) < 0 {
		i++
	}
	return i, i < len(ids) && bytes.Equal(ids[i][:], id)
}

// repairEvent repairs one event stored in part, in one transaction. An
// event without its meta or depth key is removed: all of its keys (the
// room key r/ is the room's, not the event's). One with both and without
// its chain key gets its chain and room keys back from the envelope
// (rebuilt: true): it is in Scan, so the restored log and room state hold
// it, and removing it would make a gap that sync does not fetch while the
// node and its peers have the same heads (node/p2p: a session reconciles
// only when the heads differ). A room's create event is never removed (a
// room is not loaded without it; it cannot be stored in part, being the
// first event of its room's first batch): with its meta held, its index
// keys are written again, and otherwise it is left as it is.
func (s *Store) repairEvent(p partial) (removed, rebuilt bool, err error) {
	err = s.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(eventKey(p.id))
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		env, err := s.envelopeOf(p.id, item, v)
		if err != nil {
			return fmt.Errorf("stored event %s: %w: %w", p.id, errUnreadable, err)
		}
		ev, err := crdt.DecodeStored(p.id, env, nil)
		if err != nil {
			return fmt.Errorf("stored event %s: %w: %w", p.id, errUnreadable, err)
		}
		room := ev.Room
		depth := depthKey(room, ev.Depth, p.id)
		chain := chainKey(room, ev.Device, ev.Seq, p.id)
		rebuild := p.meta && (p.depth || ev.Type == crdt.TypeCreate)
		switch {
		case rebuild:
			rebuilt = true
			if !p.depth && !p.folded {
				if err := checkMeta(txn, p.id, ev.Depth); err != nil {
					return err
				}
			}
			keys := [][]byte{depth, roomKey(room)}
			if !p.folded {
				keys = append(keys, chain)
			}
			for _, k := range keys {
				if err := txn.Set(k, nil); err != nil {
					return err
				}
			}
			return nil
		case ev.Type == crdt.TypeCreate:
			return nil
		}
		removed = true
		for _, k := range [][]byte{eventKey(p.id), metaKey(p.id), depth, chain, bodyKey(p.id), headKey(room, p.id)} {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	return removed, rebuilt, err
}

// checkMeta checks that the meta of id is well formed and at depth.
func checkMeta(txn *badger.Txn, id crdt.EventID, depth uint64) error {
	item, err := txn.Get(metaKey(id))
	if err != nil {
		return fmt.Errorf("meta of %s: %w", id, err)
	}
	return item.Value(func(m []byte) error {
		if len(m) < 9 || binary.BigEndian.Uint64(m[1:9]) != depth {
			return fmt.Errorf("meta of %s: %w", id, errUnreadable)
		}
		return nil
	})
}
