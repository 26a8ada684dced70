package e2ee

import (
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/parley-p2p/parley/crdt"
)

// SecretSize is the size of an epoch secret.
const SecretSize = 32

// EpochID names a key epoch of a room. It is derived from the epoch secret
// (HKDF-SHA256, salt = room ID bytes, info "parley/v1/epoch-id"), so it is
// public and commits to the secret: whoever unwraps a secret recomputes the
// ID and compares. It travels in the envelope's epoch field (32 bytes).
type EpochID [32]byte

// String renders the ID as lower-case hex.
func (id EpochID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is the zero ID (no epoch).
func (id EpochID) IsZero() bool { return id == EpochID{} }

// EpochIDFromBytes reads the envelope's epoch field.
func EpochIDFromBytes(b []byte) (EpochID, error) {
	var id EpochID
	if len(b) != len(id) {
		return id, fmt.Errorf("%w: epoch id of %d bytes", ErrMalformed, len(b))
	}
	copy(id[:], b)
	return id, nil
}

// DeriveEpochID computes the ID of secret in room.
func DeriveEpochID(room crdt.RoomID, secret []byte) (EpochID, error) {
	var id EpochID
	if room == "" || len(secret) != SecretSize {
		return id, fmt.Errorf("%w: epoch id needs a room and a %d-byte secret", ErrMalformed, SecretSize)
	}
	copy(id[:], derive(secret, room, labelEpochID))
	return id, nil
}

// derive is HKDF-SHA256(secret, salt = room ID bytes, info = label), 32 bytes.
func derive(secret []byte, room crdt.RoomID, label string) []byte {
	k, err := hkdf.Key(sha256.New, secret, []byte(room), label, 32)
	if err != nil {
		panic("e2ee: hkdf: " + err.Error()) // only for lengths above 255*32
	}
	return k
}

// EpochKey is an epoch secret of a room together with its ID and the keys
// derived from it. It never prints its secret. It is immutable until
// Destroy, which must not race with its use (the KeyStore removes a key
// before destroying it).
type EpochKey struct {
	_      [0]func() // not comparable
	room   crdt.RoomID
	id     EpochID
	secret [SecretSize]byte
	msgKey [32]byte
	gone   bool
}

// NewEpoch makes a fresh epoch for room from 32 bytes of rand.
func NewEpoch(rand io.Reader, room crdt.RoomID) (*EpochKey, error) {
	if rand == nil {
		return nil, fmt.Errorf("%w: nil random source", ErrMalformed)
	}
	var s [SecretSize]byte
	if _, err := io.ReadFull(rand, s[:]); err != nil {
		return nil, fmt.Errorf("e2ee: read randomness: %w", err)
	}
	return EpochKeyFromSecret(room, s[:])
}

// EpochKeyFromSecret rebuilds an epoch key from its stored secret.
func EpochKeyFromSecret(room crdt.RoomID, secret []byte) (*EpochKey, error) {
	id, err := DeriveEpochID(room, secret)
	if err != nil {
		return nil, err
	}
	k := &EpochKey{room: room, id: id}
	copy(k.secret[:], secret)
	copy(k.msgKey[:], derive(secret, room, labelMsgKey))
	return k, nil
}

// openedSecret builds the key for a secret that arrived under a claimed ID
// and checks the commitment.
func openedSecret(room crdt.RoomID, claimed EpochID, secret []byte) (*EpochKey, error) {
	k, err := EpochKeyFromSecret(room, secret)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrEpochMismatch, err)
	}
	if k.id != claimed {
		k.Destroy()
		return nil, fmt.Errorf("%w: claimed %s", ErrEpochMismatch, claimed)
	}
	return k, nil
}

// Room is the room the epoch belongs to.
func (k *EpochKey) Room() crdt.RoomID { return k.room }

// ID is the epoch's ID.
func (k *EpochKey) ID() EpochID { return k.id }

// Secret returns a copy of the 32-byte secret, for the node to persist
// (encrypted at rest). Nil once destroyed.
func (k *EpochKey) Secret() []byte {
	if k.gone {
		return nil
	}
	return append([]byte(nil), k.secret[:]...)
}

// Destroyed reports whether Destroy was called.
func (k *EpochKey) Destroyed() bool { return k.gone }

// Destroy overwrites the secret and the derived keys. Go cannot promise that
// no other copy exists in memory (docs/design.md §5.5); this removes the
// ones this value holds. Later use returns ErrNoKey.
func (k *EpochKey) Destroy() {
	clear(k.secret[:])
	clear(k.msgKey[:])
	k.gone = true
}

// Equal compares two keys in constant time (the room and ID are public).
func (k *EpochKey) Equal(o *EpochKey) bool {
	if k == nil || o == nil || k.room != o.room || k.gone || o.gone {
		return false
	}
	return subtle.ConstantTimeCompare(k.secret[:], o.secret[:]) == 1
}

// String never shows the secret.
func (k *EpochKey) String() string {
	if k == nil {
		return "EpochKey(nil)"
	}
	return "EpochKey(" + k.id.String() + ")"
}

// GoString never shows the secret.
func (k *EpochKey) GoString() string { return k.String() }

// Format never shows the secret, whatever the verb.
func (k *EpochKey) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }
