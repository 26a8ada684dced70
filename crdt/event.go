package crdt

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"

	"github.com/parley-p2p/parley/internal/cborhead"
)

// Limits on events. They are part of the protocol (docs/protocol.md).
const (
	Version      = 1
	MaxEventSize = 64 << 10 // envelope + body of an ordinary event
	// MaxKeyEventSize bounds the events that carry key material wrapped to
	// every member device (KeyEventType): a rotation costs about 1.2 KB per
	// device, so one event holds about 420 devices.
	MaxKeyEventSize = 512 << 10
	MaxPrev         = 20
	MaxAuth         = 10
	MaxTypeLen      = 64
	MaxStateKey     = 256
	MaxEpochLen     = 64
)

// keyEventTypes are the room event types that carry key rotations or key
// forwards (see package rooms: member events carry one on a kick or a ban,
// device events on a removal or as a join barrier).
var keyEventTypes = map[string]bool{"member": true, "device": true, "rotate": true, "keyfwd": true}

// KeyEventType reports whether events of type typ may be up to
// MaxKeyEventSize instead of MaxEventSize.
func KeyEventType(typ string) bool { return keyEventTypes[typ] }

// MaxSize is the largest envelope + body allowed for an event of type typ.
func MaxSize(typ string) int {
	if keyEventTypes[typ] {
		return MaxKeyEventSize
	}
	return MaxEventSize
}

// TypeCreate is the type of the event that founds a room; its ID is the room ID.
const TypeCreate = "create"

// signTag separates event signatures from every other signature.
const signTag = "parley/event/v1\x00"

// envelope is the wire form of an event's signed part (DAG-CBOR map).
type envelope struct {
	V        uint64  `cbor:"v"`
	Room     *link   `cbor:"room,omitempty"`
	Type     string  `cbor:"type"`
	SKey     *string `cbor:"skey,omitempty"`
	User     []byte  `cbor:"user"`
	Device   []byte  `cbor:"device"`
	Cert     []byte  `cbor:"cert"`
	Seq      uint64  `cbor:"seq"`
	Self     *link   `cbor:"self,omitempty"`
	Prev     []link  `cbor:"prev"`
	Auth     []link  `cbor:"auth"`
	Depth    uint64  `cbor:"depth"`
	TS       int64   `cbor:"ts"`
	Epoch    []byte  `cbor:"epoch,omitempty"`
	BodyHash []byte  `cbor:"body_hash"`
	BLen     *uint64 `cbor:"blen,omitempty"` // the body's length; written where a room limits bytes (docs/protocol.md §1.1)
	Sig      []byte  `cbor:"sig,omitempty"`
}

// frame is the transport unit for one event: the envelope bytes as signed and
// the body (nil once purged by a redaction).
type frame struct {
	_    struct{} `cbor:",toarray"`
	Env  []byte
	Body []byte
}

// Event is a decoded event whose signature, certificate, encoding and limits
// have been checked (stateless validity, rule R1). Its fields must not be
// modified; Body may be nil when the body was purged or never received.
type Event struct {
	ID       EventID
	Room     RoomID // the room; for a create event its own ID
	Type     string
	StateKey *string
	User     UserID
	Device   DeviceID
	Seq      uint64
	Self     EventID
	Prev     []EventID // sorted, unique
	Auth     []EventID // sorted, unique
	Depth    uint64
	TS       int64 // author's clock, ms; display only
	Epoch    []byte
	BodyHash [32]byte
	// BodyLen is the body's length as signed (the envelope's blen), when
	// HasBodyLen: known even once the body is purged, so rules may count it.
	BodyLen    uint64
	HasBodyLen bool

	Envelope []byte // the signed envelope bytes; ID is their CID
	Body     []byte
}

// IsState reports whether the event carries a state key.
func (e *Event) IsState() bool { return e.StateKey != nil }

// Size is the event's size on the wire, for limits and metrics.
func (e *Event) Size() int { return len(e.Envelope) + len(e.Body) }

// Encode returns the transport form (a two-element CBOR array: envelope, body).
func (e *Event) Encode() []byte { return AppendFrame(nil, e.Envelope, e.Body) }

// AppendFrame appends the transport frame of envelope bytes env and body
// (nil once purged) to dst: what Event.Encode returns, the canonical CBOR
// of frame (a two-element array of byte strings, a purged body null),
// written without reflection, so that a server can send stored bytes
// without decoding them (badgerstore's GetFrames).
func AppendFrame(dst, env, body []byte) []byte {
	n := 1 + 9 + len(env) + 9 + len(body)
	if cap(dst)-len(dst) < n {
		dst = append(make([]byte, 0, len(dst)+n), dst...)
	}
	dst = append(dst, 0x82)
	dst = cborhead.Append(dst, cborhead.Bytes, uint64(len(env)))
	dst = append(dst, env...)
	if body == nil {
		return append(dst, 0xf6)
	}
	dst = cborhead.Append(dst, cborhead.Bytes, uint64(len(body)))
	return append(dst, body...)
}

// decodeFrame splits a transport frame into its envelope bytes and body
// (nil when purged), copied out of b. A frame that is not exactly what
// AppendFrame writes (FuzzFrame checks it against the canonical decoder)
// goes to the strict CBOR decoder, whose error says what is wrong.
func decodeFrame(b []byte) (env, body []byte, err error) {
	if e, bd, ok := splitFrame(b); ok {
		buf := make([]byte, len(e)+len(bd))
		copy(buf, e)
		copy(buf[len(e):], bd)
		env = buf[:len(e):len(e)]
		if bd != nil {
			body = buf[len(e):]
		}
		return env, body, nil
	}
	var f frame
	if err := UnmarshalCanonical(b, &f); err != nil {
		return nil, nil, fmt.Errorf("%w: frame: %w", ErrMalformed, err) // keeps ErrNonCanonical visible
	}
	return f.Env, f.Body, nil
}

// splitFrame parses the canonical frame AppendFrame writes, without
// copying: a two-element array, a byte string, and a byte string or null,
// each head in its shortest form, and nothing after.
func splitFrame(b []byte) (env, body []byte, ok bool) {
	if len(b) < 3 || b[0] != 0x82 {
		return nil, nil, false
	}
	env, rest, ok := splitBytes(b[1:])
	if !ok {
		return nil, nil, false
	}
	if len(rest) == 1 && rest[0] == 0xf6 {
		return env, nil, true
	}
	body, rest, ok = splitBytes(rest)
	if !ok || len(rest) != 0 {
		return nil, nil, false
	}
	if body == nil {
		body = []byte{}
	}
	return env, body, true
}

// splitBytes reads a byte string with a shortest-form head off b.
func splitBytes(b []byte) (v, rest []byte, ok bool) {
	n, b, ok := cborhead.Read(b, cborhead.Bytes)
	if !ok || n > uint64(len(b)) {
		return nil, nil, false
	}
	return b[:n:n], b[n:], true
}

// WithoutBody returns a copy of e whose body is purged.
func (e *Event) WithoutBody() *Event {
	c := *e
	c.Body = nil
	return &c
}

// Draft is what an author fills in; Sign turns it into an Event.
type Draft struct {
	Room     RoomID // zero for a create event
	Type     string
	StateKey *string
	Seq      uint64
	Self     EventID
	Prev     []EventID
	Auth     []EventID
	Depth    uint64
	TS       int64
	Epoch    []byte
	Body     []byte
	// SignBodyLen writes the body's length into the envelope (blen): an
	// author does where the state it is judged against limits bytes.
	SignBodyLen bool
}

// SignedSize is the event's size as its envelope states it: the envelope
// and the signed body length (0 without blen). Unlike Size, it does not
// change when the body is purged.
func (e *Event) SignedSize() int64 {
	n := int64(len(e.Envelope))
	if e.HasBodyLen {
		n += int64(e.BodyLen)
	}
	return n
}

// Errors of stateless validation. Decode wraps them with detail.
var (
	ErrMalformed = errors.New("crdt: malformed event")
	ErrTooLarge  = errors.New("crdt: event too large")
	ErrSignature = errors.New("crdt: bad signature")
	ErrCert      = errors.New("crdt: bad device certificate")
	ErrBodyHash  = errors.New("crdt: body does not match body_hash")
)

// Sign builds, signs and returns an event. Prev and Auth are sorted and
// de-duplicated; the result passes Decode.
func Sign(id *Identity, d Draft) (*Event, error) {
	return signWith(id, id.Device.Public(), d, id.Device.Sign)
}

// signWith is Sign with the device key and its signing function given;
// tests use it to sign with keys and signatures at the edges of the rule.
func signWith(id *Identity, dev DeviceID, d Draft, sign func([]byte) []byte) (*Event, error) {
	sum := sha256.Sum256(d.Body)
	env := envelope{
		V: Version, Type: d.Type, SKey: d.StateKey,
		User: id.User[:], Device: dev[:], Cert: id.Cert,
		Seq: d.Seq, Depth: d.Depth, TS: d.TS, Epoch: d.Epoch, BodyHash: sum[:],
		Prev: toLinks(d.Prev), Auth: toLinks(d.Auth),
	}
	if d.SignBodyLen {
		n := uint64(len(d.Body))
		env.BLen = &n
	}
	if d.Room != "" {
		r := link(d.Room)
		env.Room = &r
	}
	if d.Self != "" {
		s := link(d.Self)
		env.Self = &s
	}
	unsigned, err := encMode.Marshal(&env)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	env.Sig = sign(append([]byte(signTag), unsigned...))
	b, err := encMode.Marshal(&env)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	// b is encMode's own output, canonical as made: parsed like a stored
	// envelope, without the re-encoding that checks a received one.
	p, err := parseUnverified(b, d.Body, IDOf(b), false)
	if err != nil {
		return nil, err
	}
	return p.finish()
}

func toLinks(ids []EventID) []link {
	s := slices.Clone(ids)
	slices.Sort(s)
	s = slices.Compact(s)
	out := make([]link, len(s))
	for i, x := range s {
		out[i] = link(x)
	}
	return out
}

// Decode parses the transport form of an event and checks its stateless
// validity (R1): canonical encoding, field limits, certificate, signature and,
// when a body is present, the body hash. It never consults other events.
func Decode(b []byte) (*Event, error) {
	if len(b) > MaxKeyEventSize+64 {
		return nil, ErrTooLarge
	}
	env, body, err := decodeFrame(b)
	if err != nil {
		return nil, err
	}
	return decodeEnvelope(env, body)
}

// DecodeEnvelope checks signed envelope bytes with an optional body (nil when purged).
func DecodeEnvelope(env, body []byte) (*Event, error) { return decodeEnvelope(env, body) }

// DecodeStored re-reads an event this node verified before storing it under
// id. It checks that the envelope hashes to id, the field rules and the body
// hash, but neither the signatures nor that the encoding is canonical: the
// content address already proves the bytes are the ones checked, at a
// hundredth of the cost.
func DecodeStored(id EventID, env, body []byte) (*Event, error) {
	if IDOf(env) != id {
		return nil, fmt.Errorf("%w: stored envelope does not hash to %s", ErrMalformed, id)
	}
	p, err := parseUnverified(env, body, id, false)
	if err != nil {
		return nil, err
	}
	return p.finish()
}

func decodeEnvelope(envBytes, body []byte) (*Event, error) {
	return parseEnvelope(envBytes, body, true)
}

func parseEnvelope(envBytes, body []byte, verify bool) (*Event, error) {
	p, err := parseUnverified(envBytes, body, "", verify)
	if err != nil {
		return nil, err
	}
	if err := p.verifyOne(); err != nil {
		return nil, err
	}
	return p.finish()
}

// parsed is an envelope that passed the encoding and limit checks of R1 and
// waits for its certificate and signature checks (sigMsg is nil when none
// is needed: the caller did not ask, or the envelope verified before).
type parsed struct {
	e        *Event
	envBytes []byte
	body     []byte
	id       EventID
	cert     []byte
	sig      []byte
	sigMsg   []byte // signTag ‖ envelope without sig
}

// parseUnverified decodes an envelope. stored is its ID when the caller
// has checked that the bytes hash to an ID this node stored after checking
// them; they are then known to be canonical, and "" otherwise.
func parseUnverified(envBytes, body []byte, stored EventID, verify bool) (*parsed, error) {
	if len(envBytes)+len(body) > MaxKeyEventSize {
		return nil, ErrTooLarge
	}
	var env envelope                        // on the stack: the slow paths below decode and encode copies
	if !parseEnvelopeFast(envBytes, &env) { // the usual layout, decoded without reflection
		var err error
		if env, err = unmarshalEnvelope(envBytes, stored != ""); err != nil {
			return nil, err
		}
	}
	e, err := fromEnvelope(&env)
	if err != nil {
		return nil, err
	}
	if len(envBytes)+len(body) > MaxSize(e.Type) {
		return nil, fmt.Errorf("%w: %d bytes for a %q event (at most %d)", ErrTooLarge, len(envBytes)+len(body), e.Type, MaxSize(e.Type))
	}
	id := stored
	if id == "" {
		id = IDOf(envBytes)
	}
	p := &parsed{e: e, envBytes: envBytes, body: body, id: id, cert: env.Cert, sig: env.Sig}
	if verify && !sigCache.has(string(p.id)) {
		if p.sigMsg = signedPart(envBytes); p.sigMsg == nil {
			var err error
			if p.sigMsg, err = unsignedMessage(env); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

// unmarshalEnvelope decodes an envelope by reflection: strictly, or, when its
// bytes are known canonical (stored), without the check.
func unmarshalEnvelope(envBytes []byte, stored bool) (envelope, error) {
	var env envelope
	decode := UnmarshalCanonical
	if stored {
		decode = decMode.Unmarshal
	}
	if err := decode(envBytes, &env); err != nil {
		if errors.Is(err, ErrNonCanonical) {
			return envelope{}, err
		}
		return envelope{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return env, nil
}

// unsignedMessage is the message env's signature covers: signTag and its
// encoding without the signature.
func unsignedMessage(env envelope) ([]byte, error) {
	env.Sig = nil
	unsigned, err := encMode.Marshal(&env)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return append([]byte(signTag), unsigned...), nil
}

// sigKeyValue is the canonical encoding of the key "sig" and the header of
// its 64-byte value.
const sigKeyValue = "\x63sig\x58\x40"

// signedPart returns signTag ‖ the envelope without its sig, cut from the
// canonical envelope bytes instead of encoded again: canonical order puts
// "v", "ts" and "seq" (integers, always present) before "sig", and nothing
// else, so the pair is found without reading any field an author chooses.
// It returns nil if the bytes are not laid out so (then the caller encodes).
func signedPart(env []byte) []byte {
	if len(env) == 0 || env[0]&0xe0 != 0xa0 || env[0]&0x1f == 0 || env[0]&0x1f > 23 {
		return nil // not a map with a one-byte header
	}
	at := 1
	for _, key := range []string{"\x61v", "\x62ts", "\x63seq"} {
		if !hasPrefix(env[at:], key) {
			return nil
		}
		at += len(key)
		n := intLen(env[at:])
		if n == 0 {
			return nil
		}
		at += n
	}
	if !hasPrefix(env[at:], sigKeyValue) || len(env) < at+len(sigKeyValue)+64 {
		return nil
	}
	out := make([]byte, 0, len(signTag)+len(env)-len(sigKeyValue)-64)
	out = append(out, signTag...)
	out = append(out, env[0]-1)
	out = append(out, env[1:at]...)
	return append(out, env[at+len(sigKeyValue)+64:]...)
}

// hasPrefix is strings.HasPrefix(string(b), p) without copying b.
func hasPrefix(b []byte, p string) bool { return len(b) >= len(p) && string(b[:len(p)]) == p }

// intLen is the length of the CBOR integer at the start of b, 0 if none.
func intLen(b []byte) int {
	if len(b) == 0 || b[0]>>5 > 1 {
		return 0
	}
	n := 1
	switch ai := b[0] & 0x1f; {
	case ai < 24:
	case ai <= 27:
		n += 1 << (ai - 24)
	default:
		return 0
	}
	if len(b) < n {
		return 0
	}
	return n
}

// verifyOne checks the certificate and the signature one at a time.
func (p *parsed) verifyOne() error {
	if p.sigMsg == nil {
		return nil
	}
	if !checkCertCached(p.e.User, p.e.Device, p.cert) {
		return ErrCert
	}
	if !p.e.Device.Verify(p.sigMsg, p.sig) {
		return ErrSignature
	}
	sigCache.add(string(p.id))
	p.sigMsg = nil
	return nil
}

// finish checks the body hash and completes the event.
func (p *parsed) finish() (*Event, error) {
	e := p.e
	if p.body != nil {
		if sha256.Sum256(p.body) != e.BodyHash {
			return nil, ErrBodyHash
		}
		if e.HasBodyLen && uint64(len(p.body)) != e.BodyLen {
			// The author signed a length that no body with this hash has:
			// the event stands without a body, on every node alike.
			p.body = nil
		}
	}
	e.ID = p.id
	if e.Type == TypeCreate {
		e.Room = e.ID
	}
	e.Envelope = p.envBytes
	e.Body = p.body
	return intern(e), nil
}

func fromEnvelope(env *envelope) (*Event, error) {
	bad := func(format string, args ...any) (*Event, error) {
		return nil, fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
	if env.V != Version {
		return bad("version %d", env.V)
	}
	if env.Type == "" || len(env.Type) > MaxTypeLen {
		return bad("type length %d", len(env.Type))
	}
	if env.SKey != nil && len(*env.SKey) > MaxStateKey {
		return bad("state key too long")
	}
	if len(env.Sig) != 64 || len(env.Cert) != 64 || len(env.BodyHash) != 32 {
		return bad("sig, cert or body_hash of wrong length")
	}
	if len(env.Epoch) > MaxEpochLen {
		return bad("epoch too long")
	}
	e := &Event{Type: env.Type, StateKey: env.SKey, Seq: env.Seq, Depth: env.Depth, TS: env.TS, Epoch: env.Epoch}
	var err error
	if e.User, err = KeyFromBytes(env.User); err != nil {
		return bad("user key")
	}
	if e.Device, err = KeyFromBytes(env.Device); err != nil {
		return bad("device key")
	}
	copy(e.BodyHash[:], env.BodyHash)
	if env.BLen != nil {
		if *env.BLen > MaxKeyEventSize {
			return bad("blen %d over %d", *env.BLen, MaxKeyEventSize)
		}
		e.BodyLen, e.HasBodyLen = *env.BLen, true
	}
	if e.Prev, err = fromLinks(env.Prev, MaxPrev); err != nil {
		return bad("prev: %v", err)
	}
	if e.Auth, err = fromLinks(env.Auth, MaxAuth); err != nil {
		return bad("auth: %v", err)
	}
	if env.Self != nil {
		e.Self = EventID(*env.Self)
	}
	if env.Room != nil {
		e.Room = RoomID(*env.Room)
	}
	create := env.Type == TypeCreate
	switch {
	case create && (env.Room != nil || len(e.Prev) != 0 || len(e.Auth) != 0 || e.Seq != 0 || e.Depth != 0):
		return bad("create must have no room, prev or auth, seq 0 and depth 0")
	case !create && (env.Room == nil || len(e.Prev) == 0):
		return bad("non-create event needs a room and at least one parent")
	case (e.Seq == 0) != (e.Self == ""):
		return bad("self must be set iff seq > 0")
	case e.Self != "" && !slices.Contains(e.Prev, e.Self):
		return bad("self must be among prev")
	case !create && e.Depth == 0:
		return bad("depth 0 is reserved for create")
	}
	return e, nil
}

// fromLinks checks that links are sorted, unique and at most max.
func fromLinks(ls []link, max int) ([]EventID, error) {
	if len(ls) > max {
		return nil, fmt.Errorf("%d links, at most %d", len(ls), max)
	}
	out := make([]EventID, len(ls))
	for i, l := range ls {
		out[i] = EventID(l)
		if i > 0 && out[i-1] >= out[i] { // bytewise, as bytes.Compare, without converting
			return nil, errors.New("links not sorted and unique")
		}
	}
	return out, nil
}
