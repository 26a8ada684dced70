// Package archive reads and writes history archives: a room's signed events
// as one CARv1 file (docs/protocol.md section 7) that any IPLD tool can list
// and verify. It is pure: it touches nothing but the io.Reader and io.Writer
// it is given.
//
// The layout is
//
//	varint(len(header)) ‖ header                 DAG-CBOR {roots: [room CID], version: 1}
//	varint(36+len(index)) ‖ index CID ‖ index    the first block: DAG-CBOR, below
//	varint(36+len(env)) ‖ event ID ‖ env         each envelope, a dag-cbor block under its event ID
//	varint(36+len(body)) ‖ body CID ‖ body       each body once, a raw block under CIDv1 raw sha2-256
//
// and the index block is the canonical DAG-CBOR map
//
//	{events: [[event link, body link | null], ...], format: "parley/history-archive", room: link, version: 1}
//
// listing every event once in ascending (depth, ID) order, with null for a
// body purged by a redaction. Write puts the blocks in that order (envelope,
// then its body unless an earlier event had the same body); Read accepts the
// blocks after the index in any order, but nothing else: every block must be
// referenced by the index, none may repeat, every CID must hash to its bytes,
// and every event must verify (R1) and belong to the room.
package archive

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/fxamacker/cbor/v2"

	"github.com/parley-p2p/parley/crdt"
)

// Format names the index block's schema; Version is its version.
const (
	Format  = "parley/history-archive"
	Version = 1
)

// ErrInvalid is wrapped by every error Read returns for bad archive bytes.
var ErrInvalid = errors.New("invalid history archive")

// Limits bound what Read accepts (and therefore the memory it uses: Read
// holds the whole archive).
type Limits struct {
	MaxEvents int   // events in the index
	MaxBytes  int64 // the whole file
}

// DefaultLimits are generous for any real room: a million events, 4 GiB.
var DefaultLimits = Limits{MaxEvents: 1 << 20, MaxBytes: 4 << 30}

// Archive is a decoded history archive.
type Archive struct {
	Room crdt.RoomID
	// Events are every event of the room in ascending (depth, ID) order,
	// each verified by crdt.DecodeEnvelope (R1); Body is nil when it was
	// purged. The first is the room's create event.
	Events []*crdt.Event
	// Media are the media blocks the archive carries (ciphertext as a
	// node stores it; the file keys are only inside the sealed messages),
	// in index order, each checked against its CID.
	Media []Block
}

// Block is a media block: its binary CID (CIDv1, dag-cbor or raw,
// sha2-256) and its bytes.
type Block struct {
	CID  []byte
	Data []byte
}

// MaxMediaBlock bounds a media block's bytes (package media's
// MaxBlockSize).
const MaxMediaBlock = 2 << 20

// Binary CID prefixes (CIDv1, codec, sha2-256, 32 bytes). Every CID in an
// archive is one of these, 36 bytes long.
const (
	prefixDagCBOR = "\x01\x71\x12\x20"
	prefixRaw     = "\x01\x55\x12\x20"
	cidLen        = 4 + sha256.Size
)

func cidOf(prefix string, data []byte) string {
	sum := sha256.Sum256(data)
	return prefix + string(sum[:])
}

// link is an IPLD link (CBOR tag 42 around 0x00 ‖ binary CID) to a dag-cbor
// or raw block.
type link string

const linkHead = "\xd8\x2a\x58\x25\x00" // tag 42, byte string of 37 bytes, identity multibase

func (l link) MarshalCBOR() ([]byte, error) {
	if len(l) != cidLen {
		return nil, fmt.Errorf("archive: link of %d bytes", len(l))
	}
	return []byte(linkHead + string(l)), nil
}

func (l *link) UnmarshalCBOR(b []byte) error {
	if len(b) != len(linkHead)+cidLen || string(b[:len(linkHead)]) != linkHead {
		return errors.New("not a link to a CIDv1 sha2-256 block")
	}
	c := string(b[len(linkHead):])
	if p := c[:4]; p != prefixDagCBOR && p != prefixRaw {
		return errors.New("link is neither dag-cbor nor raw sha2-256")
	}
	*l = link(c)
	return nil
}

func (l link) is(prefix string) bool { return len(l) == cidLen && string(l[:4]) == prefix }

// String renders a CID for error messages.
func (l link) String() string { return crdt.EventID(l).String() }

type header struct {
	Roots   []link `cbor:"roots"`
	Version uint64 `cbor:"version"`
}

type entry struct {
	_     struct{} `cbor:",toarray"`
	Event link
	Body  *link // nil: purged
}

type index struct {
	Events  []entry `cbor:"events"`
	Format  string  `cbor:"format"`
	Media   []link  `cbor:"media,omitempty"`
	Room    link    `cbor:"room"`
	Version uint64  `cbor:"version"`
}

var encMode = func() cbor.EncMode {
	m, err := cbor.CanonicalEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return m
}()

func decMode(maxElems int) cbor.DecMode {
	m, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		MaxNestedLevels:   8,
		MaxArrayElements:  max(maxElems, 16),
		MaxMapPairs:       16,
		TagsMd:            cbor.TagsAllowed,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}

// unmarshalCanonical decodes strictly and insists that b is the canonical
// encoding of what it decodes to.
func unmarshalCanonical(dm cbor.DecMode, b []byte, v any) error {
	if err := dm.Unmarshal(b, v); err != nil {
		return err
	}
	again, err := encMode.Marshal(v)
	if err != nil {
		return err
	}
	if !bytes.Equal(again, b) {
		return errors.New("not canonical DAG-CBOR")
	}
	return nil
}

// Write writes the archive of room holding evs: every event of the room this
// node holds, in any order (Write sorts a copy by (depth, ID)). It fails if
// an event belongs to another room, repeats, or the create event is missing.
// Media blobs the events reference are not included (no media protocol yet).
func Write(w io.Writer, room crdt.RoomID, evs []*crdt.Event) error {
	return WriteMedia(w, room, evs, nil)
}

// WriteMedia is Write with media blocks: their CIDs are listed in the
// index's media field (in the order given, without repeats) and the blocks
// follow the events' blocks.
func WriteMedia(w io.Writer, room crdt.RoomID, evs []*crdt.Event, media []Block) error {
	evs = slices.Clone(evs)
	slices.SortFunc(evs, cmpEvent)
	if len(evs) == 0 || evs[0].ID != room {
		return fmt.Errorf("archive: the create event of room %s is missing", room)
	}
	idx := index{Events: make([]entry, len(evs)), Format: Format, Room: link(room), Version: Version}
	for i, ev := range evs {
		if ev.Room != room {
			return fmt.Errorf("archive: event %s belongs to room %s, not %s", ev.ID, ev.Room, room)
		}
		if i > 0 && evs[i-1].ID == ev.ID {
			return fmt.Errorf("archive: event %s given twice", ev.ID)
		}
		idx.Events[i].Event = link(ev.ID)
		if ev.Body != nil {
			b := link(cidOf(prefixRaw, ev.Body))
			idx.Events[i].Body = &b
		}
	}
	seen := map[string]bool{}
	var blocks []Block
	for _, b := range media {
		c := string(b.CID)
		if len(c) != cidLen || (c[:4] != prefixDagCBOR && c[:4] != prefixRaw) || cidOf(c[:4], b.Data) != c {
			return fmt.Errorf("archive: media block %x: not a CIDv1 sha2-256 dag-cbor or raw CID of its bytes", b.CID)
		}
		if len(b.Data) > MaxMediaBlock {
			return fmt.Errorf("archive: media block %s: %d bytes, at most %d", link(c), len(b.Data), MaxMediaBlock)
		}
		if !seen[c] {
			seen[c] = true
			idx.Media = append(idx.Media, link(c))
			blocks = append(blocks, b)
		}
	}
	hdr, err := encMode.Marshal(header{Roots: []link{link(room)}, Version: 1})
	if err != nil {
		return fmt.Errorf("archive: encode header: %w", err)
	}
	ib, err := encMode.Marshal(idx)
	if err != nil {
		return fmt.Errorf("archive: encode index: %w", err)
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	bw.Write(binaryUvarint(uint64(len(hdr))))
	bw.Write(hdr)
	writeBlock(bw, cidOf(prefixDagCBOR, ib), ib)
	bodies := make(map[string]bool) // every block written: envelopes and bodies
	for i, ev := range evs {
		bodies[string(ev.ID)] = true
		writeBlock(bw, string(ev.ID), ev.Envelope)
		if b := idx.Events[i].Body; b != nil && !bodies[string(*b)] {
			bodies[string(*b)] = true
			writeBlock(bw, string(*b), ev.Body)
		}
	}
	for _, b := range blocks {
		if c := string(b.CID); !bodies[c] { // a block is written once
			bodies[c] = true
			writeBlock(bw, c, b.Data)
		}
	}
	return bw.Flush() // a bufio.Writer keeps the first write error
}

func writeBlock(w *bufio.Writer, c string, data []byte) {
	w.Write(binaryUvarint(uint64(len(c) + len(data))))
	w.WriteString(c)
	w.Write(data)
}

func cmpEvent(a, b *crdt.Event) int {
	return cmp.Or(cmp.Compare(a.Depth, b.Depth), cmp.Compare(a.ID, b.ID))
}

// Bounds of single items.
const (
	maxHeader     = 256
	maxEventBlock = cidLen + crdt.MaxKeyEventSize
	indexOverhead = 256
	maxEntrySize  = 1 + 2*(len(linkHead)+cidLen) // array head, two links
)

// Read decodes and verifies a whole archive within lim. Any problem with the
// bytes gives an error wrapping ErrInvalid; an error of r is returned as is.
// Nothing is returned unless everything checked out.
func Read(r io.Reader, lim Limits) (*Archive, error) {
	if lim.MaxEvents <= 0 || lim.MaxBytes <= 0 {
		lim = DefaultLimits
	}
	rd := &reader{r: bufio.NewReaderSize(r, 256<<10), left: lim.MaxBytes}

	// Header.
	hb, err := rd.item(maxHeader, headerSection)
	switch {
	case errors.Is(err, io.EOF):
		return nil, invalid("empty file")
	case err != nil:
		return nil, err
	}
	var hdr header
	if err := unmarshalCanonical(decMode(16), hb, &hdr); err != nil {
		return nil, invalid("header: %v", err)
	}
	if hdr.Version != 1 || len(hdr.Roots) != 1 || !hdr.Roots[0].is(prefixDagCBOR) {
		return nil, invalid("header: want CARv1 with one dag-cbor root, got version %d with %d roots", hdr.Version, len(hdr.Roots))
	}
	room := crdt.RoomID(hdr.Roots[0])

	// Index.
	ic, ib, err := rd.block(indexOverhead+int64(lim.MaxEvents)*int64(maxEntrySize), 0)
	switch {
	case errors.Is(err, io.EOF):
		return nil, invalid("no index block")
	case err != nil:
		return nil, err
	case string(ic[:4]) != prefixDagCBOR:
		return nil, invalid("the first block is not a dag-cbor index")
	case !hashed(ic, ib):
		return nil, invalid("index block: CID %s does not match the block's bytes", link(ic))
	}
	var idx index
	if err := unmarshalCanonical(decMode(lim.MaxEvents), ib, &idx); err != nil {
		return nil, invalid("index: %v", err)
	}
	switch {
	case idx.Format != Format || idx.Version != Version:
		return nil, invalid("index: format %q version %d, want %q version %d", idx.Format, idx.Version, Format, Version)
	case crdt.RoomID(idx.Room) != room:
		return nil, invalid("index names room %s, the header %s", idx.Room, room)
	case len(idx.Events) == 0 || crdt.RoomID(idx.Events[0].Event) != room:
		return nil, invalid("index does not start with the room's create event %s", room)
	case len(idx.Events) > lim.MaxEvents:
		return nil, invalid("%d events, at most %d", len(idx.Events), lim.MaxEvents)
	}
	// Where each block goes: envelopes by their event's position in the
	// index, bodies by their CID's slot (a body shared by events is one
	// block).
	nev := len(idx.Events)
	envAt := make(map[string]int32, nev) // event ID -> position in the index
	bodyAt := make(map[string]int32)     // body CID -> slot in bodyData
	bodyOf := make([]int32, nev)         // position -> slot in bodyData, -1 without a body
	for i, e := range idx.Events {
		if !e.Event.is(prefixDagCBOR) {
			return nil, invalid("index: event %s is not a dag-cbor CID", e.Event)
		}
		if _, dup := envAt[string(e.Event)]; dup {
			return nil, invalid("index: event %s listed twice", e.Event)
		}
		envAt[string(e.Event)] = int32(i)
		bodyOf[i] = -1
		if e.Body != nil {
			if !e.Body.is(prefixRaw) {
				return nil, invalid("index: body %s of event %s is not a raw CID", *e.Body, e.Event)
			}
			s, ok := bodyAt[string(*e.Body)]
			if !ok {
				s = int32(len(bodyAt))
				bodyAt[string(*e.Body)] = s
			}
			bodyOf[i] = s
		}
	}

	media := make(map[string][]byte, len(idx.Media)) // media block CID -> bytes (nil until read)
	for _, l := range idx.Media {
		if !l.is(prefixDagCBOR) && !l.is(prefixRaw) {
			return nil, invalid("index: media block %s is not a dag-cbor or raw CID", l)
		}
		if _, dup := media[string(l)]; dup {
			return nil, invalid("index: media block %s listed twice", l)
		}
		media[string(l)] = nil
	}
	maxBlock := int64(maxEventBlock)
	if len(media) > 0 {
		maxBlock = max(maxBlock, cidLen+MaxMediaBlock)
	}

	// Blocks: each referenced block exactly once (a media block that is
	// also an envelope or a body serves both). An envelope's CID is its
	// event's ID and a body's carries its event's signed body hash, both
	// of which decoding the event computes from the bytes: those blocks are
	// checked against their CIDs there, below, so that each is hashed once
	// (docs/design.md §2). A media block is checked here.
	envList := make([][]byte, nev)
	bodyData := make([][]byte, len(bodyAt))
	next := 0 // the envelope a writer puts next (index order), if it keeps the order
	for n := 1; ; n++ {
		c, data, err := rd.block(maxBlock, n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		var slot *[]byte // where an envelope or a body goes
		if string(c[:4]) == prefixDagCBOR {
			i, ok := next, next < nev && string(c) == string(idx.Events[next].Event)
			if !ok {
				var p int32
				p, ok = envAt[string(c)]
				i = int(p)
			}
			if ok {
				slot, next = &envList[i], i+1
			}
		} else if s, ok := bodyAt[string(c)]; ok {
			slot = &bodyData[s]
		}
		mold, mok := media[string(c)]
		switch {
		case slot == nil && !mok:
			return nil, invalid("block %d (%s) is not referenced by the index", n, link(c))
		case (slot != nil && *slot != nil) || mold != nil:
			return nil, invalid("block %d (%s) repeats an earlier block", n, link(c))
		case slot != nil && len(data) > maxEventBlock-cidLen:
			return nil, invalid("block %d (%s): %d bytes, at most %d for an event block", n, link(c), len(data), maxEventBlock-cidLen)
		}
		if mok {
			if !hashed(c, data) {
				return nil, invalid("block %d: CID %s does not match the block's bytes", n, link(c))
			}
			media[string(c)] = data
		}
		if slot != nil {
			*slot = data
		}
	}

	// Events: look the blocks up, then verify all signatures in batches.
	a := &Archive{Room: room, Events: make([]*crdt.Event, nev)}
	bodyList := make([][]byte, nev)
	for i, e := range idx.Events {
		if envList[i] == nil {
			return nil, invalid("the envelope of event %s is missing", e.Event)
		}
		if s := bodyOf[i]; s >= 0 {
			if bodyList[i] = bodyData[s]; bodyList[i] == nil {
				return nil, invalid("body %s of event %s is missing", *e.Body, e.Event)
			}
		}
	}
	evs, errs := crdt.DecodeEnvelopes(envList, bodyList)
	for i, e := range idx.Events {
		ev, err := evs[i], errs[i]
		switch {
		case errors.Is(err, crdt.ErrBodyHash) && e.Body != nil:
			return nil, invalid("body %s of event %s: its CID does not match the block's bytes", *e.Body, e.Event)
		case err != nil:
			return nil, invalid("event %s: %v", e.Event, err)
		case ev.ID != crdt.EventID(e.Event):
			return nil, invalid("event %s: its CID does not match the block's bytes", e.Event)
		case e.Body != nil && string(*e.Body) != prefixRaw+string(ev.BodyHash[:]):
			// Decoding checked the body's bytes against BodyHash (even
			// when it then drops a body of the wrong signed length).
			return nil, invalid("body %s of event %s: its CID does not match the block's bytes", *e.Body, e.Event)
		case ev.Room != room:
			return nil, invalid("event %s belongs to room %s, not %s", ev.ID, ev.Room, room)
		case i > 0 && cmpEvent(a.Events[i-1], ev) >= 0:
			return nil, invalid("index: event %s is out of (depth, ID) order", ev.ID)
		}
		a.Events[i] = ev
	}
	for _, l := range idx.Media {
		data := media[string(l)]
		if data == nil {
			return nil, invalid("media block %s is missing", l)
		}
		a.Media = append(a.Media, Block{CID: []byte(l), Data: data})
	}
	return a, nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// section names a CAR section in errors: the header (0) or block n,
// formatted only when an error is (not once per block read).
type section int

const headerSection section = 0

func (s section) String() string {
	if s == headerSection {
		return "header"
	}
	return "block " + strconv.Itoa(int(s))
}

// reader reads varint-prefixed items, never more than left bytes in all.
type reader struct {
	r    *bufio.Reader
	left int64
}

// item reads one varint-prefixed item of at most max bytes. At a clean end
// of input it returns io.EOF.
func (rd *reader) item(max int64, what section) ([]byte, error) {
	n, err := rd.uvarint(what)
	if err != nil {
		return nil, err
	}
	if n > uint64(max) {
		return nil, invalid("%s: length %d, at most %d", what, n, max)
	}
	if int64(n) > rd.left {
		return nil, invalid("%s: the archive is larger than the limit", what)
	}
	if n <= 64<<10 {
		// Read exactly n bytes into n bytes (bytes.Buffer.ReadFrom, below,
		// keeps 512 bytes free for each read, so a 1 KB item took a
		// second, larger buffer: most of an import's allocation). Each
		// item has its own allocation: an event the room state keeps after
		// the import keeps its own bytes alive, not a chunk shared with
		// others.
		b := make([]byte, n)
		got, err := io.ReadFull(rd.r, b)
		rd.left -= int64(got)
		switch {
		case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
			return nil, invalid("%s: truncated (%d of %d bytes)", what, got, n)
		case err != nil:
			return nil, err
		}
		return b, nil
	}
	// A larger length is not taken on trust: the buffer grows with what
	// is read.
	var buf bytes.Buffer
	buf.Grow(64 << 10)
	got, err := buf.ReadFrom(io.LimitReader(rd.r, int64(n)))
	rd.left -= got
	if err != nil {
		return nil, err
	}
	if uint64(got) != n {
		return nil, invalid("%s: truncated (%d of %d bytes)", what, got, n)
	}
	return buf.Bytes(), nil
}

// block reads CAR section number n: its CID, which must be CIDv1 dag-cbor
// or raw with sha2-256, and its bytes, both in the one buffer read. The
// caller checks the CID against the bytes (hashed).
// It returns io.EOF at a clean end of input.
func (rd *reader) block(maxLen int64, n int) (c, data []byte, err error) {
	what := section(n)
	b, err := rd.item(maxLen, what)
	if err != nil {
		return nil, nil, err
	}
	if len(b) < cidLen {
		return nil, nil, invalid("%s: %d bytes, shorter than a CID", what, len(b))
	}
	c, data = b[:cidLen:cidLen], b[cidLen:]
	if p := string(c[:4]); p != prefixDagCBOR && p != prefixRaw {
		return nil, nil, invalid("%s: CID is not CIDv1 dag-cbor or raw with sha2-256", what)
	}
	return c, data, nil
}

// hashed reports whether c is the CID of data.
func hashed(c, data []byte) bool { return cidOf(string(c[:4]), data) == string(c) }

// uvarint reads a minimal unsigned varint (multiformats: at most 9 bytes).
// io.EOF before its first byte is a clean end; anywhere else, truncation.
func (rd *reader) uvarint(what section) (uint64, error) {
	var x uint64
	for i := 0; i < 9; i++ {
		b, err := rd.r.ReadByte()
		if err == io.EOF {
			if i == 0 {
				return 0, io.EOF
			}
			return 0, invalid("%s: truncated length", what)
		}
		if err != nil {
			return 0, err
		}
		if rd.left <= 0 {
			return 0, invalid("%s: the archive is larger than the limit", what)
		}
		rd.left--
		x |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			if b == 0 && i > 0 {
				return 0, invalid("%s: non-minimal length", what)
			}
			return x, nil
		}
	}
	return 0, invalid("%s: length varint longer than 9 bytes", what)
}

func binaryUvarint(x uint64) []byte {
	var b []byte
	for x >= 0x80 {
		b = append(b, byte(x)|0x80)
		x >>= 7
	}
	return append(b, byte(x))
}
