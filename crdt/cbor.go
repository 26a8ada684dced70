package crdt

import (
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// encMode writes canonical DAG-CBOR: length-first sorted map keys, shortest
// integers, definite lengths, no floats in our schemas.
var encMode = func() cbor.EncMode {
	opts := cbor.CanonicalEncOptions()
	opts.Time = cbor.TimeUnix
	m, err := opts.EncMode()
	if err != nil {
		panic(err)
	}
	return m
}()

// decMode is strict: duplicate keys, indefinite lengths, unknown fields and
// unexpected tags are errors.
var decMode = func() cbor.DecMode {
	m, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		MaxNestedLevels:   16,
		MaxArrayElements:  4096,
		MaxMapPairs:       4096,
		TagsMd:            cbor.TagsAllowed,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}()

// Marshal encodes v as canonical CBOR.
func Marshal(v any) ([]byte, error) { return encMode.Marshal(v) }

// ErrNonCanonical is returned for CBOR that decodes but is not in canonical form.
var ErrNonCanonical = errors.New("crdt: non-canonical encoding")

// UnmarshalCanonical decodes b strictly into v and checks that re-encoding v
// gives b back byte for byte, so that every value has exactly one encoding.
func UnmarshalCanonical(b []byte, v any) error {
	if err := decMode.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	again, err := encMode.Marshal(v)
	if err != nil {
		return fmt.Errorf("re-encode: %w", err)
	}
	if string(again) != string(b) {
		return ErrNonCanonical
	}
	return nil
}

// link is an IPLD link: CBOR tag 42 around a byte string holding 0x00 and the
// binary CID.
type link EventID

const tagLinkHeader = "\xd8\x2a"

func (l link) MarshalCBOR() ([]byte, error) {
	id := []byte(l)
	if len(id) != len(cidPrefix)+32 {
		return nil, ErrBadID
	}
	// tag 42, byte string of 1+36 bytes (0x58 0x25), multibase identity prefix 0x00
	b := make([]byte, 0, 5+len(id))
	b = append(b, tagLinkHeader...)
	b = append(b, 0x58, byte(1+len(id)), 0x00)
	return append(b, id...), nil
}

func (l *link) UnmarshalCBOR(b []byte) error {
	const head = tagLinkHeader + "\x58\x25\x00"
	if len(b) != len(head)+len(cidPrefix)+32 || string(b[:len(head)]) != head {
		return ErrBadID
	}
	id, err := IDFromBytes(b[len(head):])
	if err != nil {
		return err
	}
	*l = link(id)
	return nil
}
