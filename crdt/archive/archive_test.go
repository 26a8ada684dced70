package archive

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/crdt"
)

func identity(t testing.TB, seed byte) *crdt.Identity {
	t.Helper()
	master, err := crdt.SecretKeyFromSeed(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	dev, err := crdt.SecretKeyFromSeed(bytes.Repeat([]byte{seed + 1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return &crdt.Identity{User: master.Public(), Device: dev, Cert: crdt.CertifyDevice(master, dev.Public())}
}

// room makes a room of one author: create, then n messages in a chain.
// Message 2 has its body purged, messages 3 and 4 share a body, message 5
// has an empty body.
func room(t testing.TB, seed byte, n int) (crdt.RoomID, []*crdt.Event) {
	t.Helper()
	id := identity(t, seed)
	create, err := crdt.Sign(id, crdt.Draft{Type: crdt.TypeCreate, TS: 1, Body: []byte{seed}})
	if err != nil {
		t.Fatal(err)
	}
	evs := []*crdt.Event{create}
	last := create
	for i := 1; i <= n; i++ {
		body := []byte("message " + strings.Repeat("x", i))
		switch i {
		case 3, 4:
			body = []byte("same body")
		case 5:
			body = []byte{}
		}
		ev, err := crdt.Sign(id, crdt.Draft{Room: create.ID, Type: "message", Seq: uint64(i - 1), Self: selfOf(last, create),
			Prev: []crdt.EventID{last.ID}, Auth: []crdt.EventID{create.ID}, Depth: uint64(i), TS: int64(i + 1), Body: body})
		if err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			ev = ev.WithoutBody()
		}
		evs = append(evs, ev)
		last = ev
	}
	return create.ID, evs
}

func selfOf(last, create *crdt.Event) crdt.EventID {
	if last == create {
		return ""
	}
	return last.ID
}

func write(t testing.TB, room crdt.RoomID, evs []*crdt.Event) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, room, evs); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func sameEvents(t *testing.T, got, want []*crdt.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.ID != w.ID || !bytes.Equal(g.Envelope, w.Envelope) || !bytes.Equal(g.Body, w.Body) || (g.Body == nil) != (w.Body == nil) {
			t.Fatalf("event %d: got %s body %q (nil %v), want %s body %q (nil %v)", i, g.ID, g.Body, g.Body == nil, w.ID, w.Body, w.Body == nil)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	r, evs := room(t, 1, 20)
	shuffled := slices.Clone(evs)
	slices.Reverse(shuffled)
	b := write(t, r, shuffled)
	if !bytes.Equal(b, write(t, r, evs)) {
		t.Fatal("the same event set gave two different archives")
	}
	a, err := Read(bytes.NewReader(b), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if a.Room != r {
		t.Fatalf("room %s, want %s", a.Room, r)
	}
	sameEvents(t, a.Events, evs)
	if !bytes.Equal(write(t, a.Room, a.Events), b) {
		t.Fatal("rewriting a read archive changed its bytes")
	}
	// 1 header, 1 index, 21 envelopes, 19 bodies (one purged, two shared).
	if n := len(sections(t, b)); n != 1+1+21+19 {
		t.Fatalf("%d sections, want %d", n, 1+1+21+19)
	}
}

func TestRoundTripCreateOnly(t *testing.T) {
	r, evs := room(t, 2, 0)
	a, err := Read(bytes.NewReader(write(t, r, evs)), Limits{MaxEvents: 1, MaxBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	sameEvents(t, a.Events, evs)
}

func TestWriteRefuses(t *testing.T) {
	r, evs := room(t, 1, 3)
	r2, other := room(t, 3, 1)
	var b bytes.Buffer
	for name, err := range map[string]error{
		"no create":    Write(&b, r, evs[1:]),
		"foreign":      Write(&b, r, append(slices.Clone(evs), other[1])),
		"twice":        Write(&b, r, append(slices.Clone(evs), evs[2])),
		"wrong create": Write(&b, r2, evs),
		"empty":        Write(&b, r, nil),
	} {
		if err == nil {
			t.Errorf("%s: Write succeeded", name)
		}
	}
}

// sections splits an archive into its varint-prefixed sections.
func sections(t testing.TB, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	rd := &reader{r: bufio.NewReader(bytes.NewReader(b)), left: int64(len(b))}
	for {
		s, err := rd.item(1<<30, section(len(out)))
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
}

// join puts sections back together.
func join(secs ...[]byte) []byte {
	var b []byte
	for _, s := range secs {
		b = append(b, binaryUvarint(uint64(len(s)))...)
		b = append(b, s...)
	}
	return b
}

func block(prefix string, data []byte) []byte { return append([]byte(cidOf(prefix, data)), data...) }

// raw builds an archive from an index and blocks, without Write's checks.
func raw(t testing.TB, root crdt.RoomID, idx index, blocks ...[]byte) []byte {
	t.Helper()
	hdr, err := encMode.Marshal(header{Roots: []link{link(root)}, Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	ib, err := encMode.Marshal(idx)
	if err != nil {
		t.Fatal(err)
	}
	return join(append([][]byte{hdr, block(prefixDagCBOR, ib)}, blocks...)...)
}

// rawArchive is what Write would produce, built by raw, with edit applied
// to the index and the list of events first.
func rawArchive(t testing.TB, r crdt.RoomID, evs []*crdt.Event, edit func(*index, *[]*crdt.Event)) []byte {
	idx := index{Format: Format, Room: link(r), Version: Version}
	for _, ev := range evs {
		e := entry{Event: link(ev.ID)}
		if ev.Body != nil {
			b := link(cidOf(prefixRaw, ev.Body))
			e.Body = &b
		}
		idx.Events = append(idx.Events, e)
	}
	evs = slices.Clone(evs)
	if edit != nil {
		edit(&idx, &evs)
	}
	var blocks [][]byte
	seen := map[string]bool{}
	for _, ev := range evs {
		blocks = append(blocks, block(prefixDagCBOR, ev.Envelope))
		if ev.Body != nil && !seen[string(ev.Body)] {
			seen[string(ev.Body)] = true
			blocks = append(blocks, block(prefixRaw, ev.Body))
		}
	}
	return raw(t, r, idx, blocks...)
}

func TestRawMatchesWrite(t *testing.T) {
	r, evs := room(t, 1, 8)
	if !bytes.Equal(rawArchive(t, r, evs, nil), write(t, r, evs)) {
		t.Fatal("the test's archive builder disagrees with Write; the corruption cases below test nothing")
	}
}

func TestReadRejects(t *testing.T) {
	r, evs := room(t, 1, 8)
	_, other := room(t, 5, 2)
	good := write(t, r, evs)
	secs := sections(t, good)

	forged := bytes.Clone(evs[3].Envelope)
	forged[len(forged)-5] ^= 1 // inside the signature
	forgedEv := *evs[3]
	forgedEv.Envelope = forged
	forgedEv.ID = crdt.IDOf(forged)

	flipped := bytes.Clone(good)
	flipped[len(flipped)-3] ^= 0x40

	cases := map[string][]byte{
		"empty":            {},
		"header only":      join(secs[0]),
		"trailing byte":    append(bytes.Clone(good), 0x07),
		"flipped byte":     flipped,
		"unreferenced":     join(append(slices.Clone(secs), block(prefixRaw, []byte("stray")))...),
		"repeated block":   join(append(slices.Clone(secs), secs[3])...),
		"missing envelope": join(append(slices.Clone(secs[:3]), secs[4:]...)...),
		"missing body":     join(secs[:len(secs)-1]...),
		"bad CID": func() []byte {
			s := slices.Clone(secs)
			s[3] = bytes.Clone(s[3])
			s[3][10] ^= 1
			return join(s...)
		}(),
		"sha2-512 CID": join(append(slices.Clone(secs), append([]byte("\x01\x55\x13\x20"), make([]byte, 32)...))...),
		"header version 2": func() []byte {
			h, _ := encMode.Marshal(header{Roots: []link{link(r)}, Version: 2})
			return join(append([][]byte{h}, secs[1:]...)...)
		}(),
		"non-canonical header": func() []byte {
			h := append(append([]byte{0xbf}, secs[0][1:]...), 0xff) // indefinite-length map
			return join(append([][]byte{h}, secs[1:]...)...)
		}(),
		"non-minimal varint": append([]byte{byte(len(secs[0])) | 0x80, 0x00}, good[1:]...),
		"other root": func() []byte {
			h, _ := encMode.Marshal(header{Roots: []link{link(evs[1].ID)}, Version: 1})
			return join(append([][]byte{h}, secs[1:]...)...)
		}(),
		"foreign-room event": rawArchive(t, r, evs, func(idx *index, l *[]*crdt.Event) {
			idx.Events = append(idx.Events, entry{Event: link(other[2].ID)})
			*l = append(*l, other[2].WithoutBody())
		}),
		"bad signature": rawArchive(t, r, evs, func(idx *index, l *[]*crdt.Event) {
			idx.Events[3].Event = link(forgedEv.ID)
			(*l)[3] = &forgedEv
		}),
		"out of order": rawArchive(t, r, evs, func(idx *index, _ *[]*crdt.Event) {
			idx.Events[2], idx.Events[3] = idx.Events[3], idx.Events[2]
		}),
		"listed twice": rawArchive(t, r, evs, func(idx *index, _ *[]*crdt.Event) {
			idx.Events = append(idx.Events, idx.Events[4])
		}),
		"no create": rawArchive(t, r, evs, func(idx *index, l *[]*crdt.Event) {
			idx.Events = idx.Events[1:]
			*l = (*l)[1:]
		}),
		"index names another room": rawArchive(t, r, evs, func(idx *index, _ *[]*crdt.Event) {
			idx.Room = link(other[0].ID)
		}),
		"wrong format": rawArchive(t, r, evs, func(idx *index, _ *[]*crdt.Event) { idx.Format = "car" }),
		"wrong body": rawArchive(t, r, evs, func(idx *index, l *[]*crdt.Event) {
			b := link(cidOf(prefixRaw, evs[1].Body))
			idx.Events[6].Body = &b
		}),
		"body link to dag-cbor": rawArchive(t, r, evs, func(idx *index, l *[]*crdt.Event) {
			b := link(evs[1].ID)
			idx.Events[6].Body = &b
		}),
	}
	for i := 0; i < len(good); i++ {
		cases[fmt.Sprintf("truncated at %d", i)] = good[:i]
	}
	// Blocks whose bytes do not hash to their CIDs (checked when the
	// events are decoded): an envelope, a body and the index.
	// rebody gives the block under CID c other bytes.
	rebody := func(c string, data []byte) []byte {
		s := slices.Clone(secs)
		for i, sec := range s {
			if i > 1 && string(sec[:cidLen]) == c {
				s[i] = append([]byte(c), data...)
				return join(s...)
			}
		}
		t.Fatalf("no block %s", link(c))
		return nil
	}
	swapped := rebody(string(evs[3].ID), evs[2].Envelope) // event 2's bytes under event 3's CID
	otherBody := rebody(cidOf(prefixRaw, evs[6].Body), []byte("not the signed body"))
	badIndex := bytes.Clone(good)
	badIndex[len(secs[0])+1+cidLen+3] ^= 1 // inside the index, past its CID
	for name, b := range map[string][]byte{"envelope under another CID": swapped, "body under another CID": otherBody, "index bytes": badIndex} {
		cases[name] = b
		if err := errOf(b); err == nil || !strings.Contains(err.Error(), "does not match the block's bytes") {
			t.Errorf("%s: %v, want a CID mismatch", name, err)
		}
	}
	for name, b := range cases {
		a, err := Read(bytes.NewReader(b), DefaultLimits)
		if err == nil {
			t.Errorf("%s: Read accepted it (%d events)", name, len(a.Events))
			continue
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: error %v does not wrap ErrInvalid", name, err)
		}
	}
	t.Logf("e.g. truncated: %v", errOf(good[:len(good)-10]))
	t.Logf("e.g. foreign room: %v", errOf(cases["foreign-room event"]))
}

func errOf(b []byte) error {
	_, err := Read(bytes.NewReader(b), DefaultLimits)
	return err
}

func TestReadLimits(t *testing.T) {
	r, evs := room(t, 1, 10)
	b := write(t, r, evs)
	if _, err := Read(bytes.NewReader(b), Limits{MaxEvents: 10, MaxBytes: 1 << 20}); !errors.Is(err, ErrInvalid) {
		t.Errorf("11 events with MaxEvents 10: %v", err)
	}
	if _, err := Read(bytes.NewReader(b), Limits{MaxEvents: 11, MaxBytes: int64(len(b) - 1)}); !errors.Is(err, ErrInvalid) {
		t.Errorf("MaxBytes one short: %v", err)
	}
	if _, err := Read(bytes.NewReader(b), Limits{MaxEvents: 11, MaxBytes: int64(len(b))}); err != nil {
		t.Errorf("exactly MaxBytes: %v", err)
	}
	// A length prefix claiming a huge block is refused before reading it.
	huge := append(join(sections(t, b)[0]), binaryUvarint(1<<40)...)
	if _, err := Read(bytes.NewReader(huge), DefaultLimits); !errors.Is(err, ErrInvalid) {
		t.Errorf("huge index length: %v", err)
	}
}

// FuzzRead: Read never panics, and what it accepts is a verified room whose
// archive, written again, reads back as the same events.
func FuzzRead(f *testing.F) {
	r, evs := room(f, 1, 6)
	good := write(f, r, evs)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(append(bytes.Clone(good), 0x00))
	for _, i := range []int{2, 60, len(good) / 2, len(good) - 2} {
		b := bytes.Clone(good)
		b[i] ^= 0x10
		f.Add(b)
	}
	r1, one := room(f, 2, 0)
	f.Add(write(f, r1, one))
	f.Add([]byte{})
	f.Add([]byte{0x00})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := Read(bytes.NewReader(b), Limits{MaxEvents: 64, MaxBytes: 1 << 20})
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if len(a.Events) == 0 || a.Events[0].ID != a.Room {
			t.Fatalf("accepted an archive without its create event first")
		}
		var out bytes.Buffer
		if err := Write(&out, a.Room, a.Events); err != nil {
			t.Fatalf("write back: %v", err)
		}
		again, err := Read(&out, Limits{MaxEvents: 64, MaxBytes: 1 << 20})
		if err != nil {
			t.Fatalf("read back: %v", err)
		}
		sameEvents(t, again.Events, a.Events)
	})
}
