package badgerstore

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/crdt/storetest"
)

// crash closes s as a killed process leaves it, as far as the segments
// go: badger's writes are kept (its Close flushes them, as its write-ahead
// file would give them back), the segments are neither synced nor is the
// synced mark recorded.
func crash(t *testing.T, s *Store) {
	t.Helper()
	if err := s.seg.flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.closeAll(); err != nil {
		t.Fatal(err)
	}
}

// TestSegmentsRotate: with small segments, a room spans several files and
// reads back whole, before and after a reopen; no event's bytes span two
// files.
func TestSegmentsRotate(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{segmentSize: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	f := storetest.NewFixture(t, "rotate", 200, 9)
	for _, b := range f.Batches {
		if err := s.Commit(b); err != nil {
			t.Fatal(err)
		}
	}
	check := func() {
		t.Helper()
		got := scanAll(t, s, f.Room)
		if len(got) != len(f.Events) {
			t.Fatalf("%d events scanned, want %d", len(got), len(f.Events))
		}
		for _, ev := range f.Events {
			st := got[ev.ID]
			if st.Event == nil || !bytes.Equal(st.Event.Body, ev.Body) || !bytes.Equal(st.Event.Envelope, ev.Envelope) {
				t.Fatalf("event %s read back differs", ev.ID)
			}
		}
		// Frames asked for in reverse order, one event twice: the
		// reads, sorted and merged into runs, give each its own.
		ids := []crdt.EventID{f.Events[3].ID}
		for i := len(f.Events) - 1; i >= 0; i-- {
			ids = append(ids, f.Events[i].ID)
		}
		frames, err := s.GetFrames(ids)
		if err != nil || len(frames) != len(ids) {
			t.Fatalf("GetFrames: %d, %v", len(frames), err)
		}
		for i, fr := range frames {
			ev := f.Events[3]
			if i > 0 {
				ev = f.Events[len(f.Events)-i]
			}
			if !bytes.Equal(fr, ev.Encode()) {
				t.Fatalf("frame %d differs", i)
			}
		}
	}
	check()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "segments", "*.seg"))
	if len(files) < 5 {
		t.Fatalf("%d segment files: the test does not rotate", len(files))
	}
	for _, name := range files {
		if info, err := os.Stat(name); err != nil || info.Size() > 4<<10 {
			t.Fatalf("segment %s: %v bytes, %v", name, info.Size(), err)
		}
	}
	s, err = Open(dir, Options{segmentSize: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check()
}

// TestCheckTailRemovesLostBytes: after a crash in which badger kept the
// records of a non-durable batch whose bytes did not reach the segment
// (as a power loss may), Open removes exactly those events: Has says no,
// Scan and GetFrames skip them, their head keys are gone, and the events
// committed durably before are whole. Committed again, they are written
// whole.
func TestCheckTailRemovesLostBytes(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	f := storetest.NewFixture(t, "tail", 60, 20)
	durable, lost := f.Batches[:len(f.Batches)-1], f.Batches[len(f.Batches)-1]
	for _, b := range durable {
		b.Durable = true
		if err := s.Commit(b); err != nil {
			t.Fatal(err)
		}
	}
	mark := s.seg.synced
	if end := [2]uint64{s.seg.cur, uint64(s.seg.end)}; mark != end {
		t.Fatalf("durable batches synced to %v, the segment ends at %v", mark, end)
	}
	if err := s.Commit(lost); err != nil {
		t.Fatal(err)
	}
	crash(t, s)
	// The bytes of the last batch did not reach the disk.
	seg := filepath.Join(dir, "segments", segName(mark[0]))
	if err := os.Truncate(seg, int64(mark[1])+100); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	for _, st := range lost.Events {
		if ok, err := s.Has(st.Event.ID); err != nil || ok {
			t.Fatalf("event with lost bytes held: %v, %v", ok, err)
		}
		if hasKey(t, s, depthKey(f.Room, st.Event.Depth, st.Event.ID)) {
			t.Fatal("depth key of a removed event left")
		}
	}
	for _, id := range lost.AddHeads {
		if hasKey(t, s, headKey(f.Room, id)) {
			t.Fatal("head key of a removed event left")
		}
	}
	got := scanAll(t, s, f.Room)
	if want := len(f.Events) - len(lost.Events); len(got) != want {
		t.Fatalf("%d events scanned, want %d", len(got), want)
	}
	ids := make([]crdt.EventID, len(f.Events))
	for i, ev := range f.Events {
		ids[i] = ev.ID
	}
	frames, err := s.GetFrames(ids)
	if err != nil || len(frames) != len(got) {
		t.Fatalf("GetFrames: %d, %v", len(frames), err)
	}
	if s.seg.synced != [2]uint64{s.seg.cur, uint64(s.seg.end)} {
		t.Fatalf("synced mark %v not recorded at the end %d", s.seg.synced, s.seg.end)
	}
	if err := s.Commit(lost); err != nil {
		t.Fatal(err)
	}
	if got := scanAll(t, s, f.Room); len(got) != len(f.Events) {
		t.Fatalf("%d events scanned after the recommit, want %d", len(got), len(f.Events))
	}
	if heads, err := s.Heads(f.Room); err != nil || !slices.Equal(heads, f.Heads()) {
		t.Fatalf("heads %v, %v", heads, err)
	}
}

// TestCheckTailKeepsWrittenBytes: after a crash that lost nothing (a
// SIGKILL: the bytes are in the kernel's cache), Open keeps every event.
func TestCheckTailKeepsWrittenBytes(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	f := storetest.NewFixture(t, "tail-kept", 60, 20)
	for _, b := range f.Batches {
		if err := s.Commit(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PurgeBody(f.Events[3].ID); err != nil { // its CRC then covers the envelope alone
		t.Fatal(err)
	}
	crash(t, s)
	s = open(t, dir)
	defer s.Close()
	if got := scanAll(t, s, f.Room); len(got) != len(f.Events) {
		t.Fatalf("%d events scanned, want %d", len(got), len(f.Events))
	}
}

// TestReadsLayout2: a store written in layout 2 (every event's bytes in
// its e/<id> value) opens and reads as it did; the room goes on in layout
// 3; GetFrames, GetMany and Scan read both; PurgeBody purges both, and
// neither purged body is left in the store's files.
func TestReadsLayout2(t *testing.T) {
	dir, s, f, old, rest := layoutFixture(t, "layout2-9d1f")
	b := f.Batches[0]
	writeLayout2(t, s, crdt.Batch{Room: b.Room, Events: old})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	if got := scanAll(t, s, b.Room); len(got) != len(old) {
		t.Fatalf("scanned %d layout 2 events, want %d", len(got), len(old))
	}
	again := old[5]
	again.Status, again.Reason = crdt.StatusRejected, "other"
	if err := s.Commit(crdt.Batch{Room: b.Room, Events: append([]crdt.Stored{again}, rest...), AddHeads: b.AddHeads}); err != nil {
		t.Fatal(err)
	}
	segValueOf(t, s, rest[0].Event.ID) // written in layout 3
	ids := make([]crdt.EventID, len(b.Events))
	for i, st := range b.Events {
		ids[i] = st.Event.ID
	}
	frames, err := s.GetFrames(ids)
	if err != nil || len(frames) != len(ids) {
		t.Fatalf("GetFrames: %d, %v", len(frames), err)
	}
	for i, fr := range frames {
		if !bytes.Equal(fr, b.Events[i].Event.Encode()) {
			t.Fatalf("frame %d differs", i)
		}
	}
	many, err := s.GetMany(ids)
	if err != nil || len(many) != len(ids) {
		t.Fatalf("GetMany: %d, %v", len(many), err)
	}
	for i, st := range many {
		if st.Status != b.Events[i].Status || !bytes.Equal(st.Event.Body, b.Events[i].Event.Body) {
			t.Fatalf("event %d read back differs", i)
		}
	}
	for _, st := range []crdt.Stored{old[7], rest[7]} {
		if err := s.PurgeBody(st.Event.ID); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Get(st.Event.ID); err != nil || got.Event.Body != nil {
			t.Fatalf("after PurgeBody: %v, body %v", err, got.Event.Body != nil)
		}
		if hits := filesContaining(t, dir, st.Event.Body); len(hits) > 0 {
			t.Fatalf("purged body still in %v", hits)
		}
		if fr, err := s.GetFrames([]crdt.EventID{st.Event.ID}); err != nil || len(fr) != 1 ||
			!bytes.Equal(fr[0], crdt.AppendFrame(nil, st.Event.Envelope, nil)) {
			t.Fatalf("frame of a purged event: %x, %v", fr, err)
		}
	}
	if got := scanAll(t, s, b.Room); len(got) != len(b.Events) {
		t.Fatalf("scanned %d events, want %d", len(got), len(b.Events))
	}
}

// TestSegValue: a layout 3 value splits back into what was put in, and
// bad ones give an error.
func TestSegValue(t *testing.T) {
	for _, v := range []segValue{
		{status: crdt.StatusAccepted, hasBody: true, crc: 7, depth: 3, seg: 1, off: 1 << 40, envLen: 300, bodyLen: 20},
		{status: crdt.StatusRejected, reason: []byte("a reason"), envLen: 1},
	} {
		got, err := splitSegValue(appendSegValue(nil, v))
		if err != nil || got.status != v.status || got.hasBody != v.hasBody || got.crc != v.crc || got.depth != v.depth ||
			got.seg != v.seg || got.off != v.off || got.envLen != v.envLen || got.bodyLen != v.bodyLen || !bytes.Equal(got.reason, v.reason) {
			t.Fatalf("%+v split back as %+v, %v", v, got, err)
		}
	}
	good := appendSegValue(nil, segValue{hasBody: true, envLen: 10, bodyLen: 5, reason: []byte("r")})
	for _, bad := range [][]byte{nil, good[:5], good[:len(good)-1], append(bytes.Clone(good), 0), {0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}} {
		if _, err := splitSegValue(bad); err == nil {
			t.Fatalf("%x split", bad)
		}
	}
}

// FuzzSegValue: splitting any bytes as a layout 3 value gives an error or
// fields that write back to a value that splits the same.
func FuzzSegValue(f *testing.F) {
	f.Add(appendSegValue(nil, segValue{status: crdt.StatusRejected, hasBody: true, crc: 1, depth: 2, seg: 3, off: 4, envLen: 5, bodyLen: 6, reason: []byte("why")}))
	f.Add(appendSegValue(nil, segValue{envLen: 200}))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := splitSegValue(b)
		if err != nil {
			return
		}
		again, err := splitSegValue(appendSegValue(nil, v))
		if err != nil || again.status != v.status || again.hasBody != v.hasBody || again.crc != v.crc || again.depth != v.depth ||
			again.seg != v.seg || again.off != v.off || again.envLen != v.envLen || again.bodyLen != v.bodyLen || !bytes.Equal(again.reason, v.reason) {
			t.Fatalf("%x: %+v, written back %+v, %v", b, v, again, err)
		}
	})
}

// FuzzZeroing: any bytes read as the record of an interrupted purge give
// an error or a body of bounded length that writes back the same.
func FuzzZeroing(f *testing.F) {
	f.Add(appendZeroing([3]uint64{1, 4096, 300}))
	f.Add(appendZeroing([3]uint64{0, 0, crdt.MaxKeyEventSize + 1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		z, err := splitZeroing(b)
		if err != nil {
			return
		}
		if z[2] > crdt.MaxKeyEventSize {
			t.Fatalf("%x: body of %d bytes", b, z[2])
		}
		if again, err := splitZeroing(appendZeroing(z)); err != nil || again != z {
			t.Fatalf("%x: %v, written back %v, %v", b, z, again, err)
		}
	})
}
