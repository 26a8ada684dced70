package e2ee

import (
	"crypto/cipher"
	"fmt"
	"io"
	"slices"

	"github.com/parley-p2p/parley/crdt"
	"golang.org/x/crypto/chacha20poly1305"
)

// Header is the part of an event envelope a sealed body is bound to: every
// envelope field that is fixed before the body is sealed. That is all of
// them except body_hash and sig (which depend on the ciphertext) and cert
// (a function of user and device). The signature covers body_hash, hence
// the ciphertext; the AAD makes the ciphertext useless in any other
// envelope, so nobody can lift it into an event of their own, re-parent it,
// move it to another room, type, state key, position or epoch.
type Header struct {
	Room     crdt.RoomID
	Type     string
	StateKey *string
	User     crdt.UserID
	Device   crdt.DeviceID
	Seq      uint64
	Self     crdt.EventID
	Prev     []crdt.EventID
	Auth     []crdt.EventID
	Depth    uint64
	TS       int64
	Epoch    EpochID
}

// DraftHeader is the header of the event that crdt.Sign will make from d
// for the device of user. d.Epoch must hold the 32-byte epoch ID. Seal the
// body with it, put the result in d.Body, then sign d unchanged.
func DraftHeader(user crdt.UserID, device crdt.DeviceID, d crdt.Draft) (Header, error) {
	ep, err := EpochIDFromBytes(d.Epoch)
	if err != nil {
		return Header{}, err
	}
	return Header{
		Room: d.Room, Type: d.Type, StateKey: d.StateKey, User: user, Device: device,
		Seq: d.Seq, Self: d.Self, Prev: d.Prev, Auth: d.Auth, Depth: d.Depth, TS: d.TS, Epoch: ep,
	}, nil
}

// EventHeader is the header of a decoded event, to open its body.
func EventHeader(e *crdt.Event) (Header, error) {
	ep, err := EpochIDFromBytes(e.Epoch)
	if err != nil {
		return Header{}, err
	}
	return Header{
		Room: e.Room, Type: e.Type, StateKey: e.StateKey, User: e.User, Device: e.Device,
		Seq: e.Seq, Self: e.Self, Prev: e.Prev, Auth: e.Auth, Depth: e.Depth, TS: e.TS, Epoch: ep,
	}, nil
}

// msgAAD is the AAD of a sealed body: the canonical CBOR array
//
//	["parley/v1/msg-aad", v, room, type, skey|null, user, device, seq,
//	 self, [prev...], [auth...], depth, ts, epoch]
//
// with IDs as byte strings (binary CIDs; self is empty when seq is 0) and
// prev and auth sorted and de-duplicated as crdt.Sign writes them.
type msgAAD struct {
	_      struct{} `cbor:",toarray"`
	Label  string
	V      uint64
	Room   []byte
	Type   string
	SKey   *string
	User   []byte
	Device []byte
	Seq    uint64
	Self   []byte
	Prev   [][]byte
	Auth   [][]byte
	Depth  uint64
	TS     int64
	Epoch  []byte
}

func ids(s []crdt.EventID) [][]byte {
	c := slices.Clone(s)
	slices.Sort(c)
	c = slices.Compact(c)
	out := make([][]byte, len(c))
	for i, id := range c {
		out[i] = []byte(id)
	}
	return out
}

func (h *Header) aad() ([]byte, error) {
	a := msgAAD{
		Label: labelMsgAAD, V: crdt.Version, Room: []byte(h.Room), Type: h.Type, SKey: h.StateKey,
		User: h.User[:], Device: h.Device[:], Seq: h.Seq, Self: append([]byte{}, h.Self...),
		Prev: ids(h.Prev), Auth: ids(h.Auth), Depth: h.Depth, TS: h.TS, Epoch: h.Epoch[:],
	}
	b, err := crdt.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	return b, nil
}

// Padding buckets: a padded plaintext is the plaintext, 0x80, then zeros,
// up to the smallest bucket that holds plaintext+1: multiples of 256 bytes
// up to 4 KiB, then 8, 16 and 32 KiB, then MaxPadded.
const (
	MaxPadded    = 60 << 10 // leaves room for the envelope within crdt.MaxEventSize
	MaxPlaintext = MaxPadded - 1
	// SealOverhead is what sealing adds beyond the padded plaintext.
	SealOverhead = chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead
)

// PaddedLen returns the bucket a plaintext of n bytes is padded to, or -1
// when n exceeds MaxPlaintext.
func PaddedLen(n int) int {
	need := n + 1
	switch {
	case n < 0 || need > MaxPadded:
		return -1
	case need <= 4096:
		return (need + 255) &^ 255
	}
	for b := 8192; b <= 32768; b <<= 1 {
		if need <= b {
			return b
		}
	}
	return MaxPadded
}

func pad(p []byte) ([]byte, error) {
	n := PaddedLen(len(p))
	if n < 0 {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(p), MaxPlaintext)
	}
	out := make([]byte, n, n+SealOverhead)
	copy(out, p)
	out[len(p)] = 0x80
	return out, nil
}

func unpad(p []byte) ([]byte, error) {
	if !isBucket(len(p)) {
		return nil, fmt.Errorf("%w: padded length %d is not a bucket", ErrMalformed, len(p))
	}
	i := len(p) - 1
	for i >= 0 && p[i] == 0 {
		i--
	}
	if i < 0 || p[i] != 0x80 {
		return nil, fmt.Errorf("%w: bad padding", ErrMalformed)
	}
	return p[:i], nil
}

func isBucket(n int) bool {
	return n > 0 && PaddedLen(n-1) == n
}

func (k *EpochKey) aead() (cipher.AEAD, error) {
	if k == nil || k.gone {
		return nil, fmt.Errorf("%w: epoch key destroyed", ErrNoKey)
	}
	a, err := chacha20poly1305.NewX(k.msgKey[:])
	if err != nil {
		panic("e2ee: xchacha key: " + err.Error())
	}
	return a, nil
}

// Seal encrypts plaintext for the event described by h, which must name
// k's room and epoch. The result, nonce (24 B, from rand) ‖
// XChaCha20-Poly1305(msg key, nonce, pad(plaintext), AAD(h)), is the body.
// The message key is HKDF-SHA256(epoch secret, salt = room, info
// "parley/v1/msg-key").
func (k *EpochKey) Seal(rand io.Reader, h Header, plaintext []byte) ([]byte, error) {
	if rand == nil {
		return nil, fmt.Errorf("%w: nil random source", ErrMalformed)
	}
	a, err := k.aead()
	if err != nil {
		return nil, err
	}
	if h.Room != k.room || h.Epoch != k.id {
		return nil, fmt.Errorf("%w: header names epoch %s, key is %s", ErrNoKey, h.Epoch, k.id)
	}
	aad, err := h.aad()
	if err != nil {
		return nil, err
	}
	p, err := pad(plaintext)
	if err != nil {
		return nil, err
	}
	out := make([]byte, chacha20poly1305.NonceSizeX, SealOverhead+len(p))
	if _, err := io.ReadFull(rand, out); err != nil {
		return nil, fmt.Errorf("e2ee: read randomness: %w", err)
	}
	out = a.Seal(out, out, p, aad)
	clear(p)
	return out, nil
}

// Open decrypts the body of the event described by h. ErrNoKey: h names
// another epoch or room than k; ErrDecrypt: the body was altered, made for
// another envelope, or under another key; ErrMalformed: bad padding.
func (k *EpochKey) Open(h Header, sealed []byte) ([]byte, error) {
	a, err := k.aead()
	if err != nil {
		return nil, err
	}
	if h.Room != k.room || h.Epoch != k.id {
		return nil, fmt.Errorf("%w: body is under epoch %s, key is %s", ErrNoKey, h.Epoch, k.id)
	}
	if len(sealed) < SealOverhead {
		return nil, fmt.Errorf("%w: body of %d bytes", ErrDecrypt, len(sealed))
	}
	aad, err := h.aad()
	if err != nil {
		return nil, err
	}
	n := chacha20poly1305.NonceSizeX
	p, err := a.Open(nil, sealed[:n], sealed[n:], aad)
	if err != nil {
		return nil, fmt.Errorf("%w: body", ErrDecrypt)
	}
	return unpad(p)
}
