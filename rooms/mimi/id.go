package mimi

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math"
)

// ErrNoURIs is returned when a message lacks the sender or room URI
// extension that its ID is computed from.
var ErrNoURIs = errors.New("mimi: message has no sender or room URI extension")

// ComputeMessageID is the algorithm of §3.3 (-08 and later): SHA-256 over
// the sender URI and the room URI, each preceded by its length in octets
// as a big-endian uint16, then the encoded message, then its salt again;
// the ID is 0x01 followed by the first 31 octets of the digest. encoded
// must be the exact bytes sent or received.
func ComputeMessageID(senderURI, roomURI string, encoded []byte, salt Salt) (MessageID, error) {
	var id MessageID
	if len(senderURI) > math.MaxUint16 || len(roomURI) > math.MaxUint16 {
		return id, errors.New("mimi: URI longer than 65535 octets")
	}
	h := sha256.New()
	var n [2]byte
	binary.BigEndian.PutUint16(n[:], uint16(len(senderURI)))
	h.Write(n[:])
	h.Write([]byte(senderURI))
	binary.BigEndian.PutUint16(n[:], uint16(len(roomURI)))
	h.Write(n[:])
	h.Write([]byte(roomURI))
	h.Write(encoded)
	h.Write(salt[:])
	sum := h.Sum(nil)
	id[0] = 0x01 // SHA-256 in the IANA Named Information Hash Algorithm registry
	copy(id[1:], sum[:31])
	return id, nil
}

// MessageIDOf decodes encoded and returns its ID, computed over encoded
// with the URIs of extensions 1 and 2.
func MessageIDOf(encoded []byte) (MessageID, *Content, error) {
	c, err := Decode(encoded)
	if err != nil {
		return MessageID{}, nil, err
	}
	id, err := c.idOver(encoded)
	return id, c, err
}

// Marshal encodes c and returns its bytes and ID. c must carry the sender
// and room URI extensions.
func (c *Content) Marshal() ([]byte, MessageID, error) {
	b, err := Encode(c)
	if err != nil {
		return nil, MessageID{}, err
	}
	id, err := c.idOver(b)
	return b, id, err
}

// IDOver returns the ID of c, given encoded, the bytes c was decoded from
// (MessageIDOf without decoding them again).
func (c *Content) IDOver(encoded []byte) (MessageID, error) { return c.idOver(encoded) }

func (c *Content) idOver(encoded []byte) (MessageID, error) {
	sender, ok1 := c.Extensions.Text(KeySenderURI)
	room, ok2 := c.Extensions.Text(KeyRoomURI)
	if !ok1 || !ok2 {
		return MessageID{}, ErrNoURIs
	}
	return ComputeMessageID(sender, room, encoded, c.Salt)
}

// SenderURI returns extension 1, or "".
func (c *Content) SenderURI() string { s, _ := c.Extensions.Text(KeySenderURI); return s }

// RoomURI returns extension 2, or "".
func (c *Content) RoomURI() string { s, _ := c.Extensions.Text(KeyRoomURI); return s }
