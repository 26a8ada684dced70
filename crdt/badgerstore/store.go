// Package badgerstore implements crdt.Store on BadgerDB v4. It is the only
// crdt package that imports badger.
//
// Key layout (docs/design.md §2; <id> and <room> are binary CIDs of
// 36 bytes, integers are big-endian uint64, so byte order is numeric order):
//
//	e/<id>                              the event's record (badger user meta layoutSegment):
//	                                    status, reason, depth, where its envelope and body
//	                                    are in the segments, their CRC-32C (segment.go)
//	h/<room>/<id>                       "" for each current head of room
//	d/<room>/<depth>/<id>               "" depth index: Scan order
//	r/<room>                            "" the room has events (Rooms)
//	l/<key>                             node-local values, never synced (local.go)
//
// and, beside badger's files, segments/NNNNNNNN.seg: the events' envelopes
// and bodies, appended once with plain writes (segment.go).
//
// That is layout 3 (2026-12-08): badger holds only small records, so it no
// longer writes each event's bytes through its write-ahead file, a flush
// and compactions; a sync page is served with one badger read per event
// and one pread per run of events near each other in a segment. A store in memory (Options.InMemory) has no segments
// and writes layout 2: e/<id> (user meta layoutFolded) holds status,
// reason, envelope and body (purge.go). Stores written before hold events
// of layouts 1 and 2, which are read as they are, without a migration (an
// event is read in the layout it was written in, so a store may hold all
// three). An e/<id> of layout 1 (no user meta) is the envelope alone, and
//
//	b/<id>                              body bytes; absent when purged or never received
//	m/<id>                              meta: status (1 byte), depth (8), reason (rest)
//	a/<room>/<device>/<seq>/<id>        "" (device, seq) index
//
// The (device, seq) index is not written any more: nothing read it
// (crdt.Log keeps its own, restored from Scan).
//
// A Commit is one badger transaction. A batch too large for one
// transaction (badger's limit is 15 % of the memtable: about 1.2 MB or
// 12k entries with this package's 8 MiB MemTableSize, so ~1.5k typical
// events) is split: the events in
// order over as many transactions as needed, each closed before an event
// that would not fit (so no event is written in part), then the heads in
// the last one. A crash in the middle leaves events without their head change, which
// is safe: crdt.Log.Restore recomputes the heads from the events, and the next
// Commit of the room rewrites them.
//
// Open repairs, once per store, the events that the split before 91091ec
// left in part (repair.go): one without its meta or depth key is removed,
// so that it is not held and a copy that arrives is written whole; one
// without its (device, seq) key gets it back from its envelope; one
// without its body only is left alone, since it looks like a purged body.
package badgerstore

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/parley-p2p/parley/crdt"
)

// Options configure Open. The zero value is fine.
type Options struct {
	// Logger receives badger's warnings and errors (its info and debug
	// lines are dropped). Nil means slog.Default().
	Logger *slog.Logger
	// GCInterval is how often Serve runs value-log GC; default 5 minutes.
	GCInterval time.Duration
	// InMemory keeps everything in memory (dir is ignored); for tests.
	InMemory bool

	memTableSize int64 // tests: a small memtable makes transactions split
	segmentSize  int64 // tests: a small SegmentSize makes segments rotate
}

// Badger writes its memtables' write-ahead files (.mem, opened sparse at
// twice MemTableSize), its value log (.vlog, sparse at twice
// ValueLogFileSize) and the tables of flushes and compactions through
// memory-mapped files, so on a full filesystem a write faults (SIGBUS)
// instead of returning an error. The store bounds these sizes, and Reserve
// says how much free space its writes may need, so that a caller can
// refuse writes before the filesystem fills (node's disk guard).
const (
	// MemTableSize is the memtable size (badger's default is 64 MiB). A
	// batch may use about 15 % of it per transaction (1.2 MiB; larger
	// batches are split, see Commit), which holds the largest event.
	MemTableSize = 8 << 20
	// ValueLogFileSize bounds one value-log file (badger's default is
	// 1 GiB). Only values over badger's 1 MiB threshold go there, which no
	// event has, so the value log stays empty.
	ValueLogFileSize = 64 << 20
	// NumLevelZeroTables is how many flushed memtables level 0 holds
	// before they are compacted into the base level (badger's default is
	// 5), and BaseLevelSize the base level's target size (badger's
	// default is 10 MiB). Event IDs and search index keys are random, so
	// every compaction of level 0 rewrites about the whole base level, and
	// the base level's compactions much of the level below: with twice the
	// tables per compaction and a base level four times as large, a bulk
	// import of 100,000 messages spends about 8 CPU-seconds less in
	// badger (docs/design.md §2). Reserve grows with both.
	NumLevelZeroTables = 10
	BaseLevelSize      = 40 << 20
)

// Store is a crdt.Store on badger. It is safe for concurrent use.
type Store struct {
	db   *badger.DB
	opts Options
	// mu is held for writing by PurgeBody while an event's e/<id> is
	// dropped and written again (purge.go), and for reading by everything
	// else that reads or writes events.
	mu sync.RWMutex
	// commitMu serializes Commit: with badger's conflict detection off
	// (Open), it keeps the existence check and the write of an event one
	// step against other commits, so that of two concurrent commits of the
	// same event the second changes nothing. The engine commits from one
	// goroutine, so it never waits on it.
	commitMu sync.Mutex
	// seg holds the events' bytes (layout 3, segment.go); nil in memory,
	// where events are written in layout 2.
	seg *segments
}

var _ crdt.Store = (*Store)(nil)

// dropEmptyMemtables removes the empty memtable files (*.mem of length 0)
// in dir. Badger creates a memtable file and then sizes it; a process
// killed between the two (kill -9 in the middle of a catch-up, issue 16)
// leaves an empty file that badger refuses to open ("while opening
// memtables ... Create a new file"), so the node could not start again.
// An empty file holds no write.
func dropEmptyMemtables(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".mem") {
			continue
		}
		if info, err := e.Info(); err == nil && info.Size() == 0 {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// Open opens (creating if needed) the store in dir.
func Open(dir string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.GCInterval <= 0 {
		opts.GCInterval = 5 * time.Minute
	}
	// No block compression: an event is signed envelope bytes (hashes, keys,
	// signatures) and, in an encrypted room, a sealed body, which do not
	// compress, and snappy over them cost a bulk import several CPU-seconds
	// and a copy of every block in each compaction. Tables written with
	// compression stay readable (the manifest records each table's).
	// Uncompressed blocks are read in place from the mapped tables, so
	// there is no block cache either. Badger's expvar counters are off:
	// nothing reads them, and every read and write paid for them (about
	// 1 % of a catch-up's CPU). Badger's detection of conflicting
	// transactions is off: every write transaction of the store runs under
	// its own lock discipline (the engine's driver is the one goroutine that
	// commits events, PurgeBody excludes everything else, the node-local
	// writes set keys blindly), so nothing could conflict, and detection
	// cost a fingerprint of every key read or written and a set of them per
	// committed transaction (docs/design.md §2).
	bo := badger.DefaultOptions(dir).WithLogger(slogAdapter{opts.Logger}).WithMetricsEnabled(false).
		WithMemTableSize(MemTableSize).WithValueLogFileSize(ValueLogFileSize).
		WithCompression(options.None).WithBlockCacheSize(0).
		WithNumLevelZeroTables(NumLevelZeroTables).WithNumLevelZeroTablesStall(2 * NumLevelZeroTables).
		WithBaseLevelSize(BaseLevelSize).WithDetectConflicts(false)
	if opts.memTableSize > 0 {
		bo = bo.WithMemTableSize(opts.memTableSize).WithValueThreshold(opts.memTableSize / 16)
	}
	if opts.InMemory {
		bo = bo.WithDir("").WithValueDir("").WithInMemory(true)
	} else if err := dropEmptyMemtables(dir); err != nil {
		return nil, fmt.Errorf("open badger store: %w", err)
	}
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("open badger store: %w", err)
	}
	s := &Store{db: db, opts: opts}
	if !opts.InMemory {
		size := int64(SegmentSize)
		if opts.segmentSize > 0 {
			size = opts.segmentSize
		}
		if s.seg, err = openSegments(filepath.Join(dir, "segments"), size); err != nil {
			db.Close()
			return nil, fmt.Errorf("open badger store: segments: %w", err)
		}
	}
	if err := s.opened(); err != nil {
		s.closeAll()
		return nil, err
	}
	return s, nil
}

// opened finishes Open: the repair of events stored in part, interrupted
// purges, and the check of the segments' tail after a crash.
func (s *Store) opened() error {
	if _, err := s.repairPartial(); err != nil {
		return err
	}
	if err := s.finishPurges(); err != nil {
		return err
	}
	if err := s.finishZeroing(); err != nil {
		return err
	}
	if s.seg == nil {
		return nil
	}
	_, err := s.checkTail()
	return err
}

// Reserve is the free space, in bytes, the store's filesystem must keep
// before each write, so that badger's own writes through memory-mapped
// files never meet a full disk: the rest of the current memtable's
// write-ahead file and the flush of one memtable into a table (2 ×
// MemTableSize), plus a compaction of level 0 into level 1, whose output
// is at most its input (NumLevelZeroTables × MemTableSize + BaseLevelSize)
// and is written before the input is deleted. With this package's sizes
// that is 16 + 80 + 40 = 136 MiB.
func (s *Store) Reserve() int64 {
	o := s.db.Opts()
	return 2*o.MemTableSize + int64(o.NumLevelZeroTables)*o.MemTableSize + o.BaseLevelSize
}

// Dir is the store's folder ("" in memory).
func (s *Store) Dir() string { return s.db.Opts().Dir }

// Close syncs the segments, records them synced and closes the store.
func (s *Store) Close() error {
	var err error
	if s.seg != nil {
		s.commitMu.Lock()
		err = s.seg.sync()
		if err == nil {
			err = s.db.Update(s.recordSynced)
		}
		s.commitMu.Unlock()
	}
	return errors.Join(err, s.closeAll())
}

func (s *Store) closeAll() error {
	err := s.db.Close()
	if s.seg != nil {
		err = errors.Join(err, s.seg.close())
	}
	return err
}

// Serve runs value-log GC every Options.GCInterval until ctx is done, then
// returns nil. It returns an error if GC fails for another reason than
// "nothing to rewrite" or a closed database.
func (s *Store) Serve(ctx context.Context) error {
	t := time.NewTicker(s.opts.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := s.gc(ctx); err != nil {
			return err
		}
	}
}

func (s *Store) gc(ctx context.Context) error {
	for ctx.Err() == nil {
		err := s.db.RunValueLogGC(0.5)
		switch {
		case err == nil:
			continue // one file rewritten; there may be more
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected), errors.Is(err, badger.ErrGCInMemoryMode):
			return nil
		default:
			return fmt.Errorf("value log gc: %w", err)
		}
	}
	return nil
}

const idLen = 36 // binary CIDv1 dag-cbor sha2-256

func key(prefix byte, parts ...[]byte) []byte {
	n := 2
	for _, p := range parts {
		n += len(p) + 1
	}
	k := make([]byte, 0, n)
	k = append(k, prefix, '/')
	for i, p := range parts {
		if i > 0 {
			k = append(k, '/')
		}
		k = append(k, p...)
	}
	return k
}

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func eventKey(id crdt.EventID) []byte { return key('e', []byte(id)) }
func bodyKey(id crdt.EventID) []byte  { return key('b', []byte(id)) }
func metaKey(id crdt.EventID) []byte  { return key('m', []byte(id)) }
func roomKey(r crdt.RoomID) []byte    { return key('r', []byte(r)) }
func headKey(r crdt.RoomID, id crdt.EventID) []byte {
	return key('h', []byte(r), []byte(id))
}
func depthKey(r crdt.RoomID, depth uint64, id crdt.EventID) []byte {
	return key('d', []byte(r), be64(depth), []byte(id))
}
func chainKey(r crdt.RoomID, dev crdt.DeviceID, seq uint64, id crdt.EventID) []byte {
	return key('a', []byte(r), dev[:], be64(seq), []byte(id))
}

// Commit implements crdt.Store.
func (s *Store) Commit(b crdt.Batch) error {
	if err := crdt.CheckBatch(b); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.commitMu.Lock()
	split, err := s.commit(b)
	s.commitMu.Unlock()
	if err != nil {
		return fmt.Errorf("commit %d events: %w", len(b.Events), err)
	}
	if b.Durable {
		if err := s.db.Sync(); err != nil {
			return fmt.Errorf("sync: %w", err)
		}
		if split {
			if err := s.syncFlushingWALs(); err != nil {
				return fmt.Errorf("sync: %w", err)
			}
		}
	}
	return nil
}

// syncFlushingWALs fsyncs the write-ahead files of the memtables badger
// has set aside for flushing. Badger's Sync covers only the active
// memtable's file, and a set-aside one is made durable only by its flush
// to a table; the first transactions of a split batch may be in one of
// them when the last is committed (docs/design.md §2). A file flushed and
// removed meanwhile is durable in its table. On Linux fsync also writes
// back pages dirtied through badger's shared mapping of the file.
func (s *Store) syncFlushingWALs() error {
	ents, err := os.ReadDir(s.Dir())
	if err != nil {
		return err
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	syncFlushingCalls.Add(1)
	for _, name := range flushingWALs(names) {
		f, err := os.Open(filepath.Join(s.Dir(), name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return err
		}
		syncFlushingFiles.Add(1)
	}
	return nil
}

// syncFlushingCalls and syncFlushingFiles count syncFlushingWALs' calls
// and the files it synced (tests).
var syncFlushingCalls, syncFlushingFiles atomic.Int64

// flushingWALs picks, from a store folder's file names, the memtable
// write-ahead files (NNNNN.mem) but the newest, which is the active one.
func flushingWALs(names []string) []string {
	wals := numbered(names, ".mem")
	if len(wals) < 2 {
		return nil
	}
	out := make([]string, 0, len(wals)-1)
	for _, w := range wals[:len(wals)-1] {
		out = append(out, w.name)
	}
	return out
}

// numberedFile is a file named by a number and a suffix.
type numberedFile struct {
	num  uint64
	name string
}

// numbered picks the names that are a decimal number (below 2^32) and
// suffix, in the numbers' order.
func numbered(names []string, suffix string) []numberedFile {
	var out []numberedFile
	for _, n := range names {
		num, ok := strings.CutSuffix(n, suffix)
		if !ok {
			continue
		}
		v, err := strconv.ParseUint(num, 10, 32)
		if err != nil {
			continue
		}
		out = append(out, numberedFile{v, n})
	}
	slices.SortFunc(out, func(a, b numberedFile) int { return cmp.Compare(a.num, b.num) })
	return out
}

// commit writes a batch in one transaction, or, when it is too big for
// one, its events in order over as many as it needs and the heads in the
// last (see the package doc). Each transaction is closed before an event
// that would overflow it, by an upper bound of badger's own estimate
// (entryCost), so no event is ever written in part and nothing is written
// twice. (Before, a batch was first written whole, thrown away at
// badger.ErrTxnTooBig and written again in parts: a catch-up's pages of
// 1,000 events paid for most of their writes twice; and a transaction that
// filled up in the middle of an event was committed with that event's
// first keys, so its next write found the event held and skipped the
// rest.)
func (s *Store) commit(b crdt.Batch) (split bool, err error) {
	t := s.newTxn()
	defer func() { t.txn.Discard(); split = t.split }()
	room := roomKey(b.Room)
	roomCost := entryCost(len(room), 0)
	for _, st := range b.Events {
		// Each transaction that writes an event also writes the room's
		// key (once), so that Rooms lists the room whatever part of a
		// split batch a crash keeps.
		if err := t.fit(s.eventCost(b.Room, st)+roomCost, 3); err != nil {
			return false, err
		}
		wrote, err := s.writeEvent(t.txn, b.Room, st, !b.New)
		if err != nil {
			return false, err
		}
		if wrote && !t.room {
			if err := t.txn.Set(room, nil); err != nil {
				return false, err
			}
			t.room = true
		}
	}
	cost := entryCost(len(localKey(syncedKey)), 16) // segmentsWritten may record the synced mark
	for _, id := range b.RemoveHeads {
		cost += entryCost(len(headKey(b.Room, id)), 0)
	}
	for _, id := range b.AddHeads {
		cost += entryCost(len(headKey(b.Room, id)), 0)
	}
	if err := t.fit(cost, int64(len(b.RemoveHeads)+len(b.AddHeads))+1); err != nil {
		return false, err
	}
	if err := writeHeads(t.txn, b); err != nil {
		return false, err
	}
	if err := s.segmentsWritten(t.txn, b.Durable); err != nil {
		return false, err
	}
	return false, t.txn.Commit()
}

// segmentsWritten writes the bytes a commit reserved in the segments
// before its last transaction commits; for a durable batch (or every
// syncEvery bytes, or after a rotation) it also fsyncs them and records
// the synced mark in that transaction.
func (s *Store) segmentsWritten(txn *badger.Txn, durable bool) error {
	if s.seg == nil {
		return nil
	}
	if !durable && !s.seg.rotated && s.seg.unsynced+int64(len(s.seg.buf)) < syncEvery {
		return s.seg.flush()
	}
	if err := s.seg.sync(); err != nil {
		return err
	}
	return s.recordSynced(txn)
}

// splitTxn is a write transaction with an upper bound of what badger
// counts against its limits (Txn.checkSize: its size estimate and entry
// count, which start at the commit marker's).
type splitTxn struct {
	s           *Store
	txn         *badger.Txn
	size, count int64
	room        bool // the room's key is written in txn
	split       bool // a transaction of the batch was committed before txn
}

func (s *Store) newTxn() *splitTxn {
	return &splitTxn{s: s, txn: s.db.NewTransaction(true), size: txnBaseCost, count: 1}
}

// txnBaseCost bounds what a new transaction counts for its commit marker.
const txnBaseCost = 64

// fit makes room for entries of the given cost: when they would take the
// transaction to badger's limits, it commits the transaction (unless it
// holds nothing yet: then the entries are too big for any, and badger
// says so) and starts another.
func (t *splitTxn) fit(cost, n int64) error {
	if t.count > 1 && (t.size+cost >= t.s.db.MaxBatchSize() || t.count+n >= t.s.db.MaxBatchCount()) {
		if t.s.seg != nil {
			if err := t.s.seg.flush(); err != nil { // the bytes before the records that point at them
				return err
			}
		}
		if err := t.txn.Commit(); err != nil {
			return err
		}
		t.txn, t.size, t.count, t.room, t.split = t.s.db.NewTransaction(true), txnBaseCost, 1, false, true
	}
	t.size += cost
	t.count += n
	return nil
}

// entryCost is an upper bound of badger's estimate of an entry (Txn.checkSize:
// the key, the value or a 12-byte pointer to it, 2 bytes of metadata and 10
// of version).
func entryCost(key, value int) int64 { return int64(key + max(value, 12) + 12) }

// eventCost bounds the cost of an event's entries (eventEntries or
// segEntries) in a transaction.
func (s *Store) eventCost(room crdt.RoomID, st crdt.Stored) int64 {
	depth := entryCost(2+len(room)+1+8+1+len(st.Event.ID), 0)
	if s.seg != nil {
		return entryCost(2+len(st.Event.ID), maxSegValue(len(st.Reason))) + depth
	}
	return entryCost(2+len(st.Event.ID), 2+2*binary.MaxVarintLen64+len(st.Reason)+len(st.Event.Envelope)+len(st.Event.Body)) + depth
}

// eventEntries are the badger entries (key, value, user meta) that store
// one event (layout 2), its e/<id> first, the bytes all cut from one
// allocation and the entries from another (the transaction keeps pointers
// to them until it commits).
func eventEntries(room crdt.RoomID, st crdt.Stored) []badger.Entry {
	ev := st.Event
	return entries(room, ev, layoutFolded, 2+2*binary.MaxVarintLen64+len(st.Reason)+len(ev.Envelope)+len(ev.Body), func(buf []byte) []byte {
		return appendEventValue(buf, st.Status, st.Reason, ev.Envelope, ev.Body)
	})
}

// entries are an event's e/<id> (with user meta meta and the value
// value appends, at most n bytes) and depth entries.
func entries(room crdt.RoomID, ev *crdt.Event, meta byte, n int, value func([]byte) []byte) []badger.Entry {
	idKey := 2 + len(ev.ID)
	depthKeyLen := 2 + len(room) + 1 + 8 + 1 + len(ev.ID)
	buf := make([]byte, 0, idKey+depthKeyLen+n)
	cut := func(from int) []byte { return buf[from:len(buf):len(buf)] }
	sets := make([]badger.Entry, 2)
	buf = append(append(buf, 'e', '/'), ev.ID...)
	sets[0].Key, sets[0].UserMeta = cut(0), meta
	at := len(buf)
	buf = value(buf)
	sets[0].Value = cut(at)
	at = len(buf)
	buf = append(append(buf, 'd', '/'), room...)
	buf = binary.BigEndian.AppendUint64(append(buf, '/'), ev.Depth)
	buf = append(append(buf, '/'), ev.ID...)
	sets[1].Key = cut(at)
	return sets
}

// writeEvent writes an event's entries (in layout 3, segEntries, or in
// memory layout 2, eventEntries) unless check is set and the event is
// held, and reports whether it wrote them. A batch whose events the
// caller knows are new (crdt.Batch.New) skips the check: a badger read
// that misses, through the memtables and every level's filter, was about
// 4 % of a catch-up's CPU.
func (s *Store) writeEvent(txn *badger.Txn, room crdt.RoomID, st crdt.Stored, check bool) (bool, error) {
	if check {
		switch _, err := txn.Get(eventKey(st.Event.ID)); {
		case err == nil:
			return false, nil // held: a recommit changes nothing
		case !errors.Is(err, badger.ErrKeyNotFound):
			return false, err
		}
	}
	var sets []badger.Entry
	if s.seg != nil {
		var err error
		if sets, err = s.segEntries(room, st); err != nil {
			return false, err
		}
	} else {
		sets = eventEntries(room, st)
	}
	for i := range sets {
		if err := txn.SetEntry(&sets[i]); err != nil {
			return false, err
		}
	}
	return true, nil
}

func writeHeads(txn *badger.Txn, b crdt.Batch) error {
	for _, id := range b.RemoveHeads {
		if err := txn.Delete(headKey(b.Room, id)); err != nil {
			return err
		}
	}
	for _, id := range b.AddHeads {
		if err := txn.Set(headKey(b.Room, id), nil); err != nil {
			return err
		}
	}
	return nil
}

// Get implements crdt.Store. The event is verified again on the way out
// (crdt.DecodeStored: the envelope must hash to its key), so a corrupted file cannot inject an event.
func (s *Store) Get(id crdt.EventID) (crdt.Stored, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var st crdt.Stored
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		st, err = s.get(txn, id)
		return err
	})
	return st, err
}

func (s *Store) get(txn *badger.Txn, id crdt.EventID) (crdt.Stored, error) {
	item, err := txn.Get(eventKey(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return crdt.Stored{}, crdt.ErrNotFound
	}
	if err != nil {
		return crdt.Stored{}, err
	}
	if item.UserMeta() == layoutSegment {
		var st crdt.Stored
		err := item.Value(func(raw []byte) error {
			v, env, body, err := s.segBytes(id, raw)
			if err == nil {
				st, err = decodeStored(id, v.status, v.reason, env, body)
			}
			return err
		})
		return st, err
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return crdt.Stored{}, err
	}
	if item.UserMeta() == layoutFolded {
		ev, err := splitEventValue(v)
		if err != nil {
			return crdt.Stored{}, fmt.Errorf("badgerstore: corrupt event %s: %w", id, err)
		}
		return decodeStored(id, ev.status, ev.reason, ev.env, ev.body)
	}
	// Layout 1: the body under b/<id>, the meta under m/<id>.
	env := v
	var body []byte
	switch item, err := txn.Get(bodyKey(id)); {
	case err == nil:
		if body, err = item.ValueCopy(nil); err != nil {
			return crdt.Stored{}, err
		}
		if body == nil {
			body = []byte{}
		}
	case !errors.Is(err, badger.ErrKeyNotFound):
		return crdt.Stored{}, err
	}
	status, reason, err := getMetaV1(txn, id)
	if err != nil {
		return crdt.Stored{}, err
	}
	return decodeStored(id, status, reason, env, body)
}

func decodeStored(id crdt.EventID, status crdt.Status, reason, env, body []byte) (crdt.Stored, error) {
	ev, err := crdt.DecodeStored(id, env, body)
	if err != nil {
		return crdt.Stored{}, fmt.Errorf("badgerstore: stored event %s: %w", id, err)
	}
	return crdt.Stored{Event: ev, Status: status, Reason: string(reason)}, nil
}

// getMetaV1 reads the status and reason of an event of layout 1 from its
// m/<id> key.
func getMetaV1(txn *badger.Txn, id crdt.EventID) (crdt.Status, []byte, error) {
	item, err := txn.Get(metaKey(id))
	if err != nil {
		return 0, nil, fmt.Errorf("meta of %s: %w", id, err)
	}
	meta, err := item.ValueCopy(nil)
	if err != nil {
		return 0, nil, err
	}
	if len(meta) < 9 {
		return 0, nil, fmt.Errorf("badgerstore: corrupt meta of %s", id)
	}
	return crdt.Status(meta[0]), meta[9:], nil
}

// Has implements crdt.Store.
func (s *Store) Has(id crdt.EventID) (bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var ok bool
	err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(eventKey(id))
		switch {
		case err == nil:
			ok = true
		case errors.Is(err, badger.ErrKeyNotFound):
		default:
			return err
		}
		return nil
	})
	return ok, err
}

// keysUnder lists the keys under prefix (without the prefix).
func (s *Store) keysUnder(prefix []byte) ([][]byte, error) {
	var out [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.PrefetchValues = false
		o.Prefix = prefix
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			out = append(out, it.Item().KeyCopy(nil)[len(prefix):])
		}
		return nil
	})
	return out, err
}

// Heads implements crdt.Store.
func (s *Store) Heads(room crdt.RoomID) ([]crdt.EventID, error) {
	ks, err := s.keysUnder(append(key('h', []byte(room)), '/'))
	if err != nil {
		return nil, err
	}
	out := make([]crdt.EventID, len(ks))
	for i, k := range ks {
		out[i] = crdt.EventID(k)
	}
	return out, nil
}

// Rooms implements crdt.Store.
func (s *Store) Rooms() ([]crdt.RoomID, error) {
	ks, err := s.keysUnder(key('r'))
	if err != nil {
		return nil, err
	}
	out := make([]crdt.RoomID, len(ks))
	for i, k := range ks {
		out[i] = crdt.RoomID(k)
	}
	return out, nil
}

const scanPage = 256

// Scan implements crdt.Store. It reads pages of events in short read
// transactions and calls fn between them, so fn may use the store.
func (s *Store) Scan(room crdt.RoomID, from uint64, fn func(crdt.Stored) bool) error {
	prefix := append(key('d', []byte(room)), '/')
	seek := append(append([]byte(nil), prefix...), be64(from)...)
	for {
		var page []crdt.Stored
		s.mu.RLock()
		err := s.db.View(func(txn *badger.Txn) error {
			o := badger.DefaultIteratorOptions
			o.PrefetchValues = false
			o.Prefix = prefix
			it := txn.NewIterator(o)
			defer it.Close()
			for it.Seek(seek); it.Valid() && len(page) < scanPage; it.Next() {
				k := it.Item().Key()
				if len(k) != len(prefix)+8+1+idLen {
					return fmt.Errorf("badgerstore: corrupt depth key %x", k)
				}
				st, err := s.get(txn, crdt.EventID(k[len(k)-idLen:]))
				if err != nil {
					return err
				}
				page = append(page, st)
				seek = append(it.Item().KeyCopy(seek[:0]), 0)
			}
			return nil
		})
		s.mu.RUnlock()
		if err != nil {
			return err
		}
		for _, st := range page {
			if !fn(st) {
				return nil
			}
		}
		if len(page) < scanPage {
			return nil
		}
	}
}

// slogAdapter passes badger's warnings and errors to slog and drops its
// info and debug chatter.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Errorf(f string, args ...any) {
	a.l.Error(fmt.Sprintf(f, args...), "component", "badger")
}

func (a slogAdapter) Warningf(f string, args ...any) {
	a.l.Warn(fmt.Sprintf(f, args...), "component", "badger")
}

func (slogAdapter) Infof(string, ...any)  {}
func (slogAdapter) Debugf(string, ...any) {}

// GetMany reads several events in one read transaction (missing ones are
// skipped). Serving sync pages uses it instead of one Get per event.
func (s *Store) GetMany(ids []crdt.EventID) ([]crdt.Stored, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]crdt.Stored, 0, len(ids))
	err := s.db.View(func(txn *badger.Txn) error {
		for _, id := range ids {
			st, err := s.get(txn, id)
			if errors.Is(err, crdt.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			out = append(out, st)
		}
		return nil
	})
	return out, err
}

// GetFrames reads the transport frames (crdt.Event.Encode) of the held
// events among ids, in order, in one read transaction, for serving sync
// pages. It reads the envelope and the body, not the metadata, and does
// not decode the event: each envelope is checked to hash to its id (so
// a corrupted file cannot inject an event, as with Get), and the
// requester verifies the rest.
func (s *Store) GetFrames(ids []crdt.EventID) ([][]byte, error) {
	frames, _, err := s.GetFramesInto(nil, ids)
	return frames, err
}

// GetFramesInto is GetFrames, cutting the frames of events of layout 3 from
// buf when it is large enough (from a new buffer otherwise), which it
// returns for the next call: a server reuses one buffer for its pages
// instead of clearing a new one for each.
func (s *Store) GetFramesInto(buf []byte, ids []crdt.EventID) ([][]byte, []byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([][]byte, 0, len(ids))
	var reads []segRead // layout 3: read from the segments after the transaction
	if s.seg != nil {
		reads = make([]segRead, 0, len(ids))
	}
	err := s.db.View(func(txn *badger.Txn) error {
		for _, id := range ids {
			item, err := txn.Get(eventKey(id))
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			var f []byte
			switch item.UserMeta() {
			case layoutSegment:
				err = item.Value(func(raw []byte) error {
					v, err := splitSegValue(raw)
					if err != nil {
						return fmt.Errorf("badgerstore: corrupt event %s: %w", id, err)
					}
					v.reason = nil
					reads = append(reads, segRead{at: len(out), id: id, v: v})
					return nil
				})
			case layoutFolded:
				err = item.Value(func(v []byte) error {
					ev, err := splitEventValue(v)
					if err != nil {
						return fmt.Errorf("badgerstore: corrupt event %s: %w", id, err)
					}
					f, err = appendFrame(id, ev.env, ev.body)
					return err
				})
			default:
				f, err = frameV1(txn, item, id)
			}
			if err != nil {
				return err
			}
			out = append(out, f)
		}
		return nil
	})
	if err == nil && len(reads) > 0 {
		buf, err = s.segFrames(reads, out, buf)
	}
	return out, buf, err
}

// appendFrame is the transport frame of an event, once its envelope is
// checked to hash to id.
func appendFrame(id crdt.EventID, env, body []byte) ([]byte, error) {
	_, f, err := appendFrameTo(nil, id, env, body)
	return f, err
}

// appendFrameTo appends the transport frame of an event to dst, once its
// envelope is checked to hash to id, and returns dst and the frame cut
// from it (its own capacity ends where it does).
func appendFrameTo(dst []byte, id crdt.EventID, env, body []byte) (out, frame []byte, err error) {
	if crdt.IDOf(env) != id {
		return dst, nil, fmt.Errorf("badgerstore: stored envelope does not hash to %s", id)
	}
	at := len(dst)
	dst = crdt.AppendFrame(dst, env, body)
	return dst, dst[at:len(dst):len(dst)], nil
}

// maxFrame bounds the length of the transport frame of an envelope and a
// body of these lengths (crdt.AppendFrame: an array head and two byte
// string heads).
func maxFrame(env, body uint64) int { return int(1 + 9 + env + 9 + body) }

// frameV1 is GetFrames' frame of an event of layout 1, whose body is
// under b/<id>.
func frameV1(txn *badger.Txn, envItem *badger.Item, id crdt.EventID) ([]byte, error) {
	var bodyItem *badger.Item
	switch item, err := txn.Get(bodyKey(id)); {
	case err == nil:
		bodyItem = item
	case !errors.Is(err, badger.ErrKeyNotFound):
		return nil, err
	}
	var f []byte
	err := envItem.Value(func(env []byte) error {
		if bodyItem == nil {
			var err error
			f, err = appendFrame(id, env, nil)
			return err
		}
		return bodyItem.Value(func(body []byte) error {
			if body == nil {
				body = []byte{}
			}
			var err error
			f, err = appendFrame(id, env, body)
			return err
		})
	})
	return f, err
}
