package crdt

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
)

// EventID is the content address of an event: the binary form of a CIDv1
// (dag-cbor, sha2-256) over the signed envelope bytes as received. It is a
// string so that it can be a map key and compares bytewise; the zero value
// means "no event".
type EventID string

// RoomID names a room: the EventID of its create event.
type RoomID = EventID

// cidPrefix is the prefix of every event and blob CID this package makes.
var cidPrefix = []byte{0x01, 0x71, 0x12, 0x20} // cidv1, dag-cbor, sha2-256, 32 bytes

// IDOf computes the EventID of signed envelope bytes.
func IDOf(envelope []byte) EventID {
	var b [36]byte // on the stack: the conversion is the one allocation
	copy(b[:], cidPrefix)
	sum := sha256.Sum256(envelope)
	copy(b[len(cidPrefix):], sum[:])
	return EventID(b[:])
}

// Digest returns the sha2-256 digest inside the ID (the gossip message ID).
func (id EventID) Digest() []byte {
	if len(id) != len(cidPrefix)+32 {
		return nil
	}
	return []byte(id[len(cidPrefix):])
}

// String renders the ID as a base32 CID string ("bafyrei..."), or "" for the zero ID.
func (id EventID) String() string {
	if id == "" {
		return ""
	}
	c, err := cid.Cast([]byte(id))
	if err != nil {
		return fmt.Sprintf("invalid-id(%x)", []byte(id))
	}
	return c.String()
}

// Cid returns the ID as a go-cid value.
func (id EventID) Cid() (cid.Cid, error) { return cid.Cast([]byte(id)) }

// ErrBadID is returned for a string or byte slice that is not an event ID.
var ErrBadID = errors.New("crdt: malformed event id")

// ParseID parses the text form of an EventID (any multibase CID string
// whose prefix is CIDv1 dag-cbor sha2-256).
func ParseID(s string) (EventID, error) {
	c, err := cid.Decode(s)
	if err != nil {
		return "", fmt.Errorf("%w: %q", ErrBadID, s)
	}
	return IDFromBytes(c.Bytes())
}

// IDFromBytes checks that b is a CIDv1 dag-cbor sha2-256 and returns it as an ID.
func IDFromBytes(b []byte) (EventID, error) {
	if len(b) != len(cidPrefix)+32 || string(b[:len(cidPrefix)]) != string(cidPrefix) {
		return "", ErrBadID
	}
	return EventID(b), nil
}
