package badgerstore

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/parley-p2p/parley/crdt"
)

// Layout 3 (docs/design.md §2): an event's envelope and body are written
// once, with plain writes, into append-only segment files
// (<dir>/segments/NNNNNNNN.seg), and badger keeps only small records: the
// e/<id> value (user meta layoutSegment, appendSegValue) says where the
// bytes are, and the depth index is as before. Badger wrote each event's
// bytes three times or more (its write-ahead file, the flush of the
// memtable, compactions), which was about half of a catch-up's CPU.
//
// Crash safety. A commit writes the bytes of its new events to the
// current segment before the badger transaction that points at them, and
// a durable batch fsyncs the segment before its last transaction commits
// (badger's Sync follows), so an acknowledged event never points at
// bytes not on stable storage. Bytes written but never pointed at (a
// failed or interrupted commit) are dead space that nothing reads. A
// non-durable batch is not synced, and after a power loss badger may keep
// index records whose bytes did not reach the disk: so the store records
// how far the segments are known synced (syncedKey, in the same
// transaction as a durable batch's last, and at rotation, every
// syncEvery bytes and Close), and Open checks every record that points
// past that mark against its CRC (checkTail), removing the events whose
// bytes are not there, as the repair removes events stored in part (sync
// fetches them again).
//
// Purging a body (PurgeBody) records the body's place (zeroingKey),
// rewrites the event's record without the body, syncs, then overwrites
// the body's bytes in the segment with zeros and fsyncs: the bytes are
// gone from the files before PurgeBody returns, without a compaction. A
// crash in between is finished at the next Open.

// layoutSegment is the badger user meta of an e/<id> entry of layout 3,
// whose value (appendSegValue) points at the event's bytes in a segment.
const layoutSegment byte = 2

// SegmentSize is the size past which the store starts a new segment file.
const SegmentSize = 1 << 30

// syncEvery is how many bytes of non-durable batches the store writes to
// its segments before it fsyncs them (and records syncedKey), so that
// Open's check after a crash reads at most about this much.
const syncEvery = 64 << 20

// syncedKey (under l/) records how far the segments are known to be on
// stable storage: segment (8 bytes) and offset (8 bytes), big-endian.
var syncedKey = []byte("badgerstore/segments-synced")

// zeroingKey (under l/) records, while PurgeBody overwrites a body of
// layout 3, where that body is (segment, offset, length: uvarints).
func zeroingKey(id crdt.EventID) []byte {
	return append([]byte("badgerstore/zeroing/"), id...)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segValue is an e/<id> value of layout 3.
type segValue struct {
	status  crdt.Status
	hasBody bool
	crc     uint32 // CRC-32C of the envelope and, when hasBody, the body
	depth   uint64
	seg     uint64
	off     uint64
	envLen  uint64
	bodyLen uint64 // 0 when !hasBody
	reason  []byte
}

// size is how many bytes of the segment the value points at.
func (v segValue) size() uint64 { return v.envLen + v.bodyLen }

// maxSegValue bounds appendSegValue's length for a reason of n bytes.
func maxSegValue(n int) int { return 2 + 4 + 6*binary.MaxVarintLen64 + n }

// appendSegValue appends the e/<id> value of layout 3: status (1 byte),
// flags (1 byte: valueHasBody), CRC-32C (4 bytes), then uvarints depth,
// segment, offset, len(envelope), len(body), len(reason), and the reason.
func appendSegValue(dst []byte, v segValue) []byte {
	var flags byte
	if v.hasBody {
		flags = valueHasBody
	}
	dst = append(dst, byte(v.status), flags)
	dst = binary.BigEndian.AppendUint32(dst, v.crc)
	for _, n := range []uint64{v.depth, v.seg, v.off, v.envLen, v.bodyLen, uint64(len(v.reason))} {
		dst = binary.AppendUvarint(dst, n)
	}
	return append(dst, v.reason...)
}

// splitSegValue reads an e/<id> value of layout 3.
func splitSegValue(b []byte) (segValue, error) {
	var v segValue
	if len(b) < 6 || b[1]&^valueHasBody != 0 {
		return v, errors.New("bad segment value head")
	}
	v.status, v.hasBody, v.crc = crdt.Status(b[0]), b[1]&valueHasBody != 0, binary.BigEndian.Uint32(b[2:6])
	rest := b[6:]
	var reasonLen uint64
	for _, p := range []*uint64{&v.depth, &v.seg, &v.off, &v.envLen, &v.bodyLen, &reasonLen} {
		n, k := binary.Uvarint(rest)
		if k <= 0 {
			return v, errors.New("bad number in segment value")
		}
		*p, rest = n, rest[k:]
	}
	switch {
	case reasonLen != uint64(len(rest)):
		return v, errors.New("bad reason length in segment value")
	case !v.hasBody && v.bodyLen != 0:
		return v, errors.New("body length without a body in segment value")
	case v.envLen > crdt.MaxKeyEventSize || v.bodyLen > crdt.MaxKeyEventSize || v.off > 1<<62:
		return v, errors.New("event too large in segment value")
	}
	v.reason = rest
	return v, nil
}

// segments are the store's segment files. Appends (reserve, flush, sync,
// rotation) run under the store's commitMu or with its mu held for
// writing; reads (readAt) take files' lock only.
type segments struct {
	dir  string
	max  int64 // SegmentSize, or smaller in tests
	mu   sync.RWMutex
	file map[uint64]*os.File
	cur  uint64 // the segment appended to
	end  int64  // where the next reserved bytes go in cur
	buf  []byte // reserved bytes not yet written, ending at end
	// synced is how far the segments are on stable storage (everything
	// below cur is); unsynced counts the bytes written since.
	synced   [2]uint64
	unsynced int64
	// rotated: cur was started since syncedKey was last recorded.
	rotated bool
}

func segName(n uint64) string { return fmt.Sprintf("%08d.seg", n) }

// openSegments opens the segment files in dir, creating it and the first
// file if needed; the next bytes go at the end of the last file.
func openSegments(dir string, max int64) (*segments, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	sg := &segments{dir: dir, max: max, file: map[uint64]*os.File{}}
	var names []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	nums := []uint64{0}
	if files := numbered(names, ".seg"); len(files) > 0 {
		nums = nums[:0]
		for _, f := range files {
			nums = append(nums, f.num)
		}
	}
	for _, n := range nums {
		f, err := os.OpenFile(filepath.Join(dir, segName(n)), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			sg.close()
			return nil, err
		}
		sg.file[n] = f
	}
	sg.cur = nums[len(nums)-1]
	info, err := sg.file[sg.cur].Stat()
	if err != nil {
		sg.close()
		return nil, err
	}
	sg.end = info.Size()
	return sg, nil
}

// reserve places n bytes, which the caller appends to buf at once, and
// says where they go. Bytes of one event never span two segments.
func (sg *segments) reserve(n int) (seg uint64, off int64, err error) {
	if sg.end > 0 && sg.end+int64(n) > sg.max {
		if err := sg.rotate(); err != nil {
			return 0, 0, err
		}
	}
	off = sg.end
	sg.end += int64(n)
	return sg.cur, off, nil
}

// flush writes the reserved bytes.
func (sg *segments) flush() error {
	if len(sg.buf) == 0 {
		return nil
	}
	n := len(sg.buf)
	_, err := sg.file[sg.cur].WriteAt(sg.buf, sg.end-int64(n))
	sg.buf = sg.buf[:0]
	sg.unsynced += int64(n)
	if err != nil {
		return fmt.Errorf("write segment: %w", err)
	}
	return nil
}

// sync writes the reserved bytes and fsyncs the current segment, unless
// nothing was written since it last did.
func (sg *segments) sync() error {
	if len(sg.buf) == 0 && sg.unsynced == 0 && sg.synced == [2]uint64{sg.cur, uint64(sg.end)} {
		return nil
	}
	if err := sg.flush(); err != nil {
		return err
	}
	if err := sg.file[sg.cur].Sync(); err != nil {
		return fmt.Errorf("sync segment: %w", err)
	}
	sg.synced, sg.unsynced = [2]uint64{sg.cur, uint64(sg.end)}, 0
	return nil
}

// rotate syncs the current segment and starts the next.
func (sg *segments) rotate() error {
	if err := sg.sync(); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(sg.dir, segName(sg.cur+1)), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("new segment: %w", err)
	}
	sg.mu.Lock()
	sg.file[sg.cur+1] = f
	sg.mu.Unlock()
	sg.cur, sg.end, sg.rotated = sg.cur+1, 0, true
	sg.synced = [2]uint64{sg.cur, 0}
	return nil
}

// readAt reads len(p) bytes of segment seg at off.
func (sg *segments) readAt(seg uint64, off uint64, p []byte) error {
	sg.mu.RLock()
	f := sg.file[seg]
	sg.mu.RUnlock()
	if f == nil {
		return fmt.Errorf("no segment %d", seg)
	}
	if _, err := f.ReadAt(p, int64(off)); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("segment %d ends before %d", seg, off+uint64(len(p)))
		}
		return err
	}
	return nil
}

// zero overwrites n bytes of segment seg at off with zeros and fsyncs it.
func (sg *segments) zero(seg, off, n uint64) error {
	sg.mu.RLock()
	f := sg.file[seg]
	sg.mu.RUnlock()
	if f == nil {
		return fmt.Errorf("no segment %d", seg)
	}
	if _, err := f.WriteAt(make([]byte, n), int64(off)); err != nil {
		return err
	}
	return f.Sync()
}

// covered reports whether every byte in the segments is below the synced
// mark m.
func (sg *segments) covered(m [2]uint64) (bool, error) {
	for n, f := range sg.file {
		info, err := f.Stat()
		if err != nil {
			return false, err
		}
		if n > m[0] && info.Size() > 0 || n == m[0] && uint64(info.Size()) > m[1] {
			return false, nil
		}
	}
	return true, nil
}

func (sg *segments) close() error {
	var errs []error
	for _, f := range sg.file {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}

// segEntries are the badger entries of an event of layout 3 (its e/<id>
// first, then its depth key), its bytes reserved in sg and appended to
// sg.buf.
func (s *Store) segEntries(room crdt.RoomID, st crdt.Stored) ([]badger.Entry, error) {
	ev := st.Event
	n := len(ev.Envelope) + len(ev.Body)
	seg, off, err := s.seg.reserve(n)
	if err != nil {
		return nil, err
	}
	at := len(s.seg.buf)
	s.seg.buf = append(append(s.seg.buf, ev.Envelope...), ev.Body...)
	v := segValue{status: st.Status, hasBody: ev.Body != nil, crc: crc32.Checksum(s.seg.buf[at:], castagnoli),
		depth: ev.Depth, seg: seg, off: uint64(off), envLen: uint64(len(ev.Envelope)), bodyLen: uint64(len(ev.Body)), reason: []byte(st.Reason)}
	return entries(room, ev, layoutSegment, maxSegValue(len(st.Reason)), func(buf []byte) []byte { return appendSegValue(buf, v) }), nil
}

// segBytes reads the envelope and body (nil when not held) an e/<id>
// value of layout 3 points at, into one new allocation.
func (s *Store) segBytes(id crdt.EventID, raw []byte) (v segValue, env, body []byte, err error) {
	if v, err = splitSegValue(raw); err != nil {
		return v, nil, nil, fmt.Errorf("badgerstore: corrupt event %s: %w", id, err)
	}
	if s.seg == nil {
		return v, nil, nil, fmt.Errorf("badgerstore: event %s in a segment of an in-memory store", id)
	}
	b := make([]byte, v.size())
	if err := s.seg.readAt(v.seg, v.off, b); err != nil {
		return v, nil, nil, fmt.Errorf("badgerstore: read event %s: %w", id, err)
	}
	env = b[:v.envLen:v.envLen]
	if v.hasBody {
		body = b[v.envLen:]
	}
	return v, env, body, nil
}

// segRead is an event of layout 3 that GetFrames reads: its place in the
// answer, its id and its record.
type segRead struct {
	at int
	id crdt.EventID
	v  segValue
}

// Reads of events close to each other in a segment are one pread: those
// at most readGap bytes apart, up to readRun bytes in all. The events of
// a sync page were mostly committed in the order they are served, so a
// page is a few reads instead of one per event (a pread was about 4 µs
// of CPU here).
const (
	readGap = 4 << 10
	readRun = 1 << 20
)

// segFrames sets out[r.at] to the transport frame (crdt.AppendFrame) of
// each read, once its envelope is checked to hash to its id, reading the
// segments in runs of nearby events into a reused buffer. The frames are
// cut from frames when it has room for all of them, from one new
// allocation otherwise; it returns the buffer they were cut from.
func (s *Store) segFrames(reads []segRead, out [][]byte, frames []byte) ([]byte, error) {
	if s.seg == nil {
		return frames, fmt.Errorf("badgerstore: event %s in a segment of an in-memory store", reads[0].id)
	}
	slices.SortFunc(reads, func(a, b segRead) int {
		return cmp.Or(cmp.Compare(a.v.seg, b.v.seg), cmp.Compare(a.v.off, b.v.off))
	})
	total := 0
	for _, r := range reads {
		total += maxFrame(r.v.envLen, r.v.bodyLen)
	}
	if cap(frames) < total {
		frames = make([]byte, 0, total)
	}
	frames = frames[:0]
	bufp := runBufs.Get().(*[]byte)
	defer runBufs.Put(bufp)
	for i := 0; i < len(reads); {
		first := reads[i].v
		end := first.off + first.size()
		j := i + 1
		for ; j < len(reads); j++ {
			v := reads[j].v
			if v.seg != first.seg || v.off > end+readGap || v.off+v.size()-first.off > readRun {
				break
			}
			end = max(end, v.off+v.size())
		}
		if n := int(end - first.off); cap(*bufp) < n {
			*bufp = make([]byte, n)
		}
		buf := (*bufp)[:end-first.off]
		if err := s.seg.readAt(first.seg, first.off, buf); err != nil {
			return frames, fmt.Errorf("badgerstore: read event %s: %w", reads[i].id, err)
		}
		for _, r := range reads[i:j] {
			b := buf[r.v.off-first.off : r.v.off-first.off+r.v.size()]
			var body []byte
			if r.v.hasBody {
				body = b[r.v.envLen:]
			}
			var err error
			if frames, out[r.at], err = appendFrameTo(frames, r.id, b[:r.v.envLen], body); err != nil {
				return frames, err
			}
		}
		i = j
	}
	return frames, nil
}

// runBufs holds segFrames' read buffers (a run is at most readRun bytes,
// or one event), so that a page's reads do not allocate and clear one
// each time.
var runBufs = sync.Pool{New: func() any { return new([]byte) }}

// recordSynced sets syncedKey to the segments' synced mark in txn.
func (s *Store) recordSynced(txn *badger.Txn) error {
	v := binary.BigEndian.AppendUint64(nil, s.seg.synced[0])
	s.seg.rotated = false
	return txn.Set(localKey(syncedKey), binary.BigEndian.AppendUint64(v, s.seg.synced[1]))
}

// readSynced reads syncedKey; a store without it has nothing synced.
func (s *Store) readSynced() ([2]uint64, error) {
	v, err := s.GetLocal(syncedKey)
	switch {
	case errors.Is(err, crdt.ErrNotFound):
		return [2]uint64{}, nil
	case err != nil:
		return [2]uint64{}, err
	case len(v) != 16:
		return [2]uint64{}, errors.New("bad synced mark")
	}
	return [2]uint64{binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])}, nil
}

// checkTail runs at Open: when the segments hold bytes past the synced
// mark (the store was not closed, and a non-durable batch since the last
// durable one may not have reached the disk), every event of layout 3
// that points past the mark is checked against its CRC, and those whose
// bytes are not there are removed (their e/, depth and head keys), so that
// they are not held and sync fetches them again. Then everything is
// synced and the mark recorded. It returns how many events it removed.
func (s *Store) checkTail() (int, error) {
	mark, err := s.readSynced()
	if err != nil {
		return 0, fmt.Errorf("badgerstore: read synced mark: %w", err)
	}
	if ok, err := s.seg.covered(mark); err != nil || ok {
		s.seg.synced = [2]uint64{s.seg.cur, uint64(s.seg.end)} // all of it is below the mark
		return 0, err
	}
	type bad struct {
		id    crdt.EventID
		depth uint64
	}
	var bads []bad
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: key('e'), PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			if item.UserMeta() != layoutSegment {
				continue
			}
			err := item.Value(func(raw []byte) error {
				v, err := splitSegValue(raw)
				if err != nil {
					return nil // as it is: reads of it report the corruption
				}
				if v.seg < mark[0] || v.seg == mark[0] && v.off+v.size() <= mark[1] {
					return nil
				}
				b := make([]byte, v.size())
				if err := s.seg.readAt(v.seg, v.off, b); err == nil && crc32.Checksum(b, castagnoli) == v.crc {
					return nil
				}
				bads = append(bads, bad{crdt.EventID(item.KeyCopy(nil)[2:]), v.depth})
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("badgerstore: check segments: %w", err)
	}
	rooms, err := s.Rooms()
	if err != nil {
		return 0, err
	}
	for _, b := range bads {
		err := s.db.Update(func(txn *badger.Txn) error {
			ks := [][]byte{eventKey(b.id)}
			for _, r := range rooms {
				ks = append(ks, depthKey(r, b.depth, b.id), headKey(r, b.id))
			}
			for _, k := range ks {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("badgerstore: remove event with lost bytes: %w", err)
		}
	}
	if err := s.seg.sync(); err != nil {
		return 0, err
	}
	if err := s.db.Update(s.recordSynced); err != nil {
		return 0, fmt.Errorf("badgerstore: record synced mark: %w", err)
	}
	if err := s.db.Sync(); err != nil {
		return 0, fmt.Errorf("badgerstore: sync: %w", err)
	}
	if len(bads) > 0 {
		s.opts.Logger.Warn("badgerstore: removed events whose bytes did not reach the disk before a crash; sync fetches them again", "events", len(bads))
	}
	return len(bads), nil
}
