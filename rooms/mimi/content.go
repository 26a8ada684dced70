package mimi

import (
	"encoding/hex"
	"errors"
)

// MessageID is a MIMI message ID (§3.3): one octet naming the hash
// algorithm (0x01, SHA-256) followed by the first 31 octets of the hash.
type MessageID [32]byte

// String returns the ID in lower-case hex.
func (id MessageID) String() string { return hex.EncodeToString(id[:]) }

// ParseMessageID parses 64 hex digits.
func ParseMessageID(s string) (MessageID, error) {
	var id MessageID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, errors.New("mimi: malformed message id")
	}
	copy(id[:], b)
	return id, nil
}

// Salt is the 16 random octets every message starts with (§4.1). The caller
// draws it from a cryptographically secure source.
type Salt [16]byte

// Content is one MIMI message (the mimiContent array of Appendix A.1).
type Content struct {
	Salt       Salt
	Replaces   *MessageID  // edit, delete or unlike of this (first-instance) message
	TopicID    []byte      // empty: no topic; Parley uses a thread root's ID
	Expires    *Expiration // nil: never
	InReplyTo  *MessageID  // reply or reaction target
	Extensions Extensions
	Body       Part
}

// Expiration is the expires field (§4.1): Time is UNIX seconds when
// Relative is false, seconds after the receiver has read it otherwise.
type Expiration struct {
	Relative bool
	Time     uint32
}

// Disposition says how a part is meant to be shown (§4.4).
type Disposition uint8

// Base dispositions (§4.4). Values 9..255 are unknown and shown as Render.
const (
	Unspecified Disposition = 0
	Render      Disposition = 1
	Reaction    Disposition = 2
	Profile     Disposition = 3
	Inline      Disposition = 4
	Icon        Disposition = 5
	Attachment  Disposition = 6
	Session     Disposition = 7
	Preview     Disposition = 8
)

// Effective maps unknown dispositions to Render, as §9.1 asks.
func (d Disposition) Effective() Disposition {
	if d > Preview {
		return Render
	}
	return d
}

// Cardinality says which of the four part shapes a Part has.
type Cardinality uint8

// The part shapes (§4.4).
const (
	NullPart     Cardinality = 0
	SinglePart   Cardinality = 1
	ExternalPart Cardinality = 2
	MultiPart    Cardinality = 3
)

// Semantics says how the parts of a MultiPart relate (§4.4).
type Semantics uint8

// The multipart semantics (§4.4, Appendix B).
const (
	ChooseOne  Semantics = 0 // alternatives, like multipart/alternative
	SingleUnit Semantics = 1 // all or nothing, like multipart/related
	ProcessAll Semantics = 2 // each on its own, like multipart/mixed
)

// Part is a NestedPart. Which fields are meaningful depends on Cardinality:
// ContentType and Content for SinglePart; ContentType and External for
// ExternalPart; Semantics and Parts (at least two) for MultiPart.
type Part struct {
	Disposition Disposition
	Language    string // "" or comma-separated RFC 5646 tags
	Cardinality Cardinality
	ContentType string
	Content     []byte
	External    *External
	Semantics   Semantics
	Parts       []Part
}

// External holds the fields of an ExternalPart after its content type
// (§4.5). Absent optional values are zero or empty, as on the wire.
type External struct {
	URL         string
	Expires     uint32 // UNIX seconds; 0: never
	Size        uint64 // octets; 0: unknown
	EncAlg      uint16 // IANA AEAD algorithm; 0: not encrypted
	Key         []byte
	Nonce       []byte
	AAD         []byte
	HashAlg     uint8 // IANA Named Information hash algorithm; 0: none
	ContentHash []byte
	Description string
	Filename    string
}

// Well-known IANA numbers used with ExternalPart.
const (
	EncAlgNone      uint16 = 0
	EncAlgAES128GCM uint16 = 1 // the draft's mandatory-to-implement algorithm
	HashAlgNone     uint8  = 0
	HashAlgSHA256   uint8  = 1
)

// Walk calls fn for p and every part below it in depth-first order, with
// the implied partIndex of §4.4 (p itself has index 0). It stops early when
// fn returns false.
func (p *Part) Walk(fn func(index int, part *Part) bool) {
	i := 0
	var walk func(q *Part) bool
	walk = func(q *Part) bool {
		if !fn(i, q) {
			return false
		}
		i++
		for k := range q.Parts {
			if !walk(&q.Parts[k]) {
				return false
			}
		}
		return true
	}
	walk(p)
}

// PartByIndex returns the part with the given implied partIndex, or nil.
func (p *Part) PartByIndex(index int) *Part {
	var found *Part
	p.Walk(func(i int, q *Part) bool {
		if i == index {
			found = q
			return false
		}
		return true
	})
	return found
}
