package crdt

import (
	"math"
	"unicode/utf8"

	"github.com/parley-p2p/parley/internal/cborhead"
)

// envKeys are the envelope's map keys in canonical order (length first,
// then bytewise: what encMode writes), each with whether encMode always
// writes it (a field without omitempty).
var envKeys = [...]struct {
	name     string
	required bool
}{
	{"v", true}, {"ts", true}, {"seq", true}, {"sig", false},
	{"auth", true}, {"blen", false}, {"cert", true}, {"prev", true}, {"room", false},
	{"self", false}, {"skey", false}, {"type", true}, {"user", true},
	{"depth", true}, {"epoch", false}, {"device", true}, {"body_hash", true},
}

const (
	envV = iota
	envTS
	envSeq
	envSig
	envAuth
	envBLen
	envCert
	envPrev
	envRoom
	envSelf
	envSKey
	envType
	envUser
	envDepth
	envEpoch
	envDevice
	envBodyHash
)

// parseEnvelopeFast decodes envelope bytes laid out exactly as encMode
// writes an envelope with the field lengths Parley uses, without
// reflection and without encoding it again. It reports false for anything
// else (a field of another length, null, a tag, an unknown key, a head
// longer than needed, ...), and the caller then uses the strict decoder,
// whose verdict and error stand. When it reports true, env is what
// UnmarshalCanonical gives for b, and UnmarshalCanonical accepts b
// (FuzzEnvelopeFast checks both). Byte fields alias b.
func parseEnvelopeFast(b []byte, env *envelope) bool {
	if len(b) == 0 || b[0]&0xe0 != 0xa0 || b[0]&0x1f > 23 {
		return false // not a map with a one-byte head (at most 17 pairs)
	}
	pairs := int(b[0] & 0x1f)
	p := cborReader{b: b[1:]}
	next := 0 // the index in envKeys the next key may have, at least
	var seen [len(envKeys)]bool
	*env = envelope{}
	for range pairs {
		key, ok := p.key()
		if !ok {
			return false
		}
		k := next
		for k < len(envKeys) && envKeys[k].name != string(key) {
			k++
		}
		if k == len(envKeys) {
			return false // unknown, repeated or out of order
		}
		next, seen[k] = k+1, true
		switch k {
		case envV:
			env.V, ok = p.uint()
		case envTS:
			env.TS, ok = p.int64()
		case envSeq:
			env.Seq, ok = p.uint()
		case envDepth:
			env.Depth, ok = p.uint()
		case envBLen:
			var n uint64
			n, ok = p.uint()
			env.BLen = &n
		case envSig:
			env.Sig, ok = p.bytesOf(64)
		case envCert:
			env.Cert, ok = p.bytesOf(64)
		case envUser:
			env.User, ok = p.bytesOf(32)
		case envDevice:
			env.Device, ok = p.bytesOf(32)
		case envBodyHash:
			env.BodyHash, ok = p.bytesOf(32)
		case envEpoch:
			env.Epoch, ok = p.bytes()
			ok = ok && len(env.Epoch) > 0 // an empty one is omitted
		case envType:
			env.Type, ok = p.text()
		case envSKey:
			var s string
			s, ok = p.text()
			env.SKey = &s
		case envRoom:
			var l link
			l, ok = p.link()
			env.Room = &l
		case envSelf:
			var l link
			l, ok = p.link()
			env.Self = &l
		case envPrev:
			env.Prev, ok = p.links()
		case envAuth:
			env.Auth, ok = p.links()
		}
		if !ok {
			return false
		}
	}
	if len(p.b) != 0 {
		return false
	}
	for k, f := range envKeys {
		if f.required && !seen[k] {
			return false // encMode would write it
		}
	}
	return true
}

// cborReader reads canonical CBOR items off b, each head in its shortest
// form; every method reports false (and leaves b unspecified) for anything
// else.
type cborReader struct{ b []byte }

// head reads a head of major type major with a definite argument.
func (r *cborReader) head(major byte) (uint64, bool) {
	n, rest, ok := cborhead.Read(r.b, major)
	if ok {
		r.b = rest
	}
	return n, ok
}

func (r *cborReader) uint() (uint64, bool) { return r.head(0) }

func (r *cborReader) int64() (int64, bool) {
	if len(r.b) > 0 && r.b[0]>>5 == 1 {
		n, ok := r.head(1)
		if !ok || n > math.MaxInt64 {
			return 0, false
		}
		return -1 - int64(n), true
	}
	n, ok := r.head(0)
	if !ok || n > math.MaxInt64 {
		return 0, false
	}
	return int64(n), true
}

// bytes reads a byte string, aliasing r's buffer.
func (r *cborReader) bytes() ([]byte, bool) {
	n, ok := r.head(2)
	if !ok || n > uint64(len(r.b)) {
		return nil, false
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v, true
}

// bytesOf reads a byte string of exactly n octets.
func (r *cborReader) bytesOf(n int) ([]byte, bool) {
	v, ok := r.bytes()
	return v, ok && len(v) == n
}

// key reads a map key: a text string, not checked for UTF-8 (the caller
// compares it with ASCII names).
func (r *cborReader) key() ([]byte, bool) {
	n, ok := r.head(3)
	if !ok || n > uint64(len(r.b)) {
		return nil, false
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v, true
}

// text reads a text string of valid UTF-8.
func (r *cborReader) text() (string, bool) {
	n, ok := r.head(3)
	if !ok || n > uint64(len(r.b)) {
		return "", false
	}
	v := r.b[:n]
	r.b = r.b[n:]
	if !utf8.Valid(v) {
		return "", false
	}
	return string(v), true
}

// link reads an IPLD link as link.MarshalCBOR writes it.
func (r *cborReader) link() (link, bool) {
	const head = tagLinkHeader + "\x58\x25\x00"
	n := len(head) + len(cidPrefix) + 32
	if len(r.b) < n || string(r.b[:len(head)]) != head {
		return "", false
	}
	id, err := IDFromBytes(r.b[len(head):n])
	if err != nil {
		return "", false
	}
	r.b = r.b[n:]
	return link(id), true
}

// links reads an array of at most MaxPrev links (longer ones are refused
// by fromLinks; the strict decoder says why).
func (r *cborReader) links() ([]link, bool) {
	n, ok := r.head(4)
	if !ok || n > MaxPrev {
		return nil, false
	}
	out := make([]link, n)
	for i := range out {
		if out[i], ok = r.link(); !ok {
			return nil, false
		}
	}
	return out, true
}
