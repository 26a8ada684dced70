package e2ee

import (
	"bytes"
	"crypto/cipher"
	"fmt"
	"io"
	"slices"

	"github.com/parley-p2p/parley/crdt"
	"golang.org/x/crypto/chacha20poly1305"
)

// Reason says why a rotation happened. It is informational for people; the
// rules that make a rotation mandatory are checked by the room state machine.
type Reason string

// Reasons a rotation may carry; any other value is malformed.
const (
	ReasonCreate        Reason = "create"         // the room's first epoch
	ReasonKick          Reason = "kick"           // embedded in a kick
	ReasonBan           Reason = "ban"            // embedded in a ban
	ReasonLeave         Reason = "leave"          // lazy rotation by the next sender after a leave
	ReasonDeviceRemoved Reason = "device_removed" // embedded in a device removal
	ReasonInvalidated   Reason = "invalidated"    // after an add invalidated by strong removal
	ReasonJoinBarrier   Reason = "join"           // `joined` history: barrier at a join, no back-link
	ReasonPeriodic      Reason = "periodic"       // RotationPolicy.Due
	ReasonMerge         Reason = "merge"          // back-links several live epochs into one
)

func (r Reason) valid() bool {
	switch r {
	case ReasonCreate, ReasonKick, ReasonBan, ReasonLeave, ReasonDeviceRemoved,
		ReasonInvalidated, ReasonJoinBarrier, ReasonPeriodic, ReasonMerge:
		return true
	}
	return false
}

// MaxBacklinks bounds the epochs one back-link seals.
const MaxBacklinks = 64

// Rotation introduces a key epoch: the epoch ID, why, the epoch secret
// wrapped to every recipient device (sorted by device; the recipient list
// is the list of wrapped devices) and, for `shared` history, a back-link
// sealing the secrets of the epochs it supersedes under the new epoch.
//
// Room and Sender are the context of the event that carries the rotation
// (its room and author device); they are not encoded, because the envelope
// already holds them, and DecodeRotation sets them. The envelope's epoch
// field of a rotate event must equal Epoch (the state machine checks it).
//
// Wire form: canonical CBOR map {epoch: bytes(32), reason: text,
// wraps: [[device, kem_seq, sealed]...], backlink?: bytes}.
type Rotation struct {
	Room   crdt.RoomID   `cbor:"-"`
	Sender crdt.DeviceID `cbor:"-"`

	Epoch    EpochID `cbor:"epoch"`
	Reason   Reason  `cbor:"reason"`
	Wraps    []Wrap  `cbor:"wraps"`
	Backlink []byte  `cbor:"backlink,omitempty"`
}

// RotateParams is what Rotate needs.
type RotateParams struct {
	Room   crdt.RoomID
	Sender crdt.DeviceID // the device that signs the carrying event
	Reason Reason
	// Recipients: the verified KEM record (latest known) of every member
	// device at the rotation's causal view, the sender's own included.
	Recipients []*KEMRecord
	// Supersedes: the live epochs this rotation replaces, sealed into the
	// back-link (policy `shared`). Empty for a barrier or the first epoch.
	Supersedes []*EpochKey
}

// Rotate makes a new epoch and the rotation that introduces it. rand
// supplies the secret and the back-link nonce. (The HPKE encapsulations draw
// from crypto/rand inside the standard library, which takes no reader.)
func Rotate(rand io.Reader, p RotateParams) (*Rotation, *EpochKey, error) {
	if !p.Reason.valid() {
		return nil, nil, fmt.Errorf("%w: reason %q", ErrMalformed, p.Reason)
	}
	k, err := NewEpoch(rand, p.Room)
	if err != nil {
		return nil, nil, err
	}
	wraps, err := sealWraps(k, p.Sender, p.Recipients)
	if err != nil {
		k.Destroy()
		return nil, nil, err
	}
	r := &Rotation{Room: p.Room, Sender: p.Sender, Epoch: k.id, Reason: p.Reason, Wraps: wraps}
	if len(p.Supersedes) > 0 {
		if r.Backlink, err = sealBacklink(rand, k, p.Sender, p.Supersedes); err != nil {
			k.Destroy()
			return nil, nil, err
		}
	}
	return r, k, nil
}

// Recipients lists the wrapped devices, sorted.
func (r *Rotation) Recipients() []crdt.DeviceID { return recipientsOf(r.Wraps) }

// Validate checks the format rules: context present, non-zero epoch, known
// reason, wraps sorted, unique and well sized, back-link size.
func (r *Rotation) Validate() error {
	switch {
	case r.Room == "":
		return fmt.Errorf("%w: rotation without a room", ErrMalformed)
	case r.Epoch.IsZero():
		return fmt.Errorf("%w: zero epoch id", ErrMalformed)
	case !r.Reason.valid():
		return fmt.Errorf("%w: reason %q", ErrMalformed, r.Reason)
	case r.Backlink != nil && (len(r.Backlink) < chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead ||
		len(r.Backlink) > maxBacklinkSize):
		return fmt.Errorf("%w: back-link of %d bytes", ErrMalformed, len(r.Backlink))
	}
	return checkWraps(r.Wraps)
}

// Marshal encodes the rotation as canonical CBOR.
func (r *Rotation) Marshal() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	b, err := crdt.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("%w: rotation: %v", ErrMalformed, err)
	}
	return b, nil
}

// DecodeRotation decodes a rotation carried by an event of room authored by
// sender, strictly: canonical CBOR, no unknown fields, format rules.
func DecodeRotation(room crdt.RoomID, sender crdt.DeviceID, b []byte) (*Rotation, error) {
	var r Rotation
	if err := crdt.UnmarshalCanonical(b, &r); err != nil {
		return nil, fmt.Errorf("%w: rotation: %v", ErrMalformed, err)
	}
	r.Room, r.Sender = room, sender
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Open unwraps the epoch secret for me and checks that it derives to
// r.Epoch. ErrNoKey: not wrapped to me (or to another KEM key of mine);
// ErrDecrypt: the wrap does not open in this context; ErrEpochMismatch: the
// rotator wrapped a secret that is not the epoch's.
func (r *Rotation) Open(me DeviceKEM) (*EpochKey, error) {
	return openWraps(r.Room, r.Epoch, r.Sender, r.Wraps, me)
}

// Back-links.

const maxBacklinkSize = chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead + 8 + MaxBacklinks*(3+34+34)

type backlinkEntry struct {
	_      struct{} `cbor:",toarray"`
	Epoch  EpochID
	Secret []byte
}

type backlinkAAD struct {
	_      struct{} `cbor:",toarray"`
	Label  string
	Room   []byte
	Epoch  []byte
	Sender []byte
}

func backlinkContext(k *EpochKey, sender crdt.DeviceID) (cipher.AEAD, []byte) {
	aead, err := chacha20poly1305.NewX(derive(k.secret[:], k.room, labelBacklinkKey))
	if err != nil {
		panic("e2ee: xchacha key: " + err.Error())
	}
	aad, err := crdt.Marshal(backlinkAAD{Label: labelBacklinkAAD, Room: []byte(k.room), Epoch: k.id[:], Sender: sender[:]})
	if err != nil {
		panic("e2ee: encode back-link aad: " + err.Error())
	}
	return aead, aad
}

// sealBacklink seals [(id, secret)...] of the superseded epochs, sorted by
// ID, under HKDF(new secret, room, "parley/v1/backlink-key"); AAD = CBOR
// ["parley/v1/backlink-aad", room, new epoch id, sender]. nonce ‖ ct.
func sealBacklink(rand io.Reader, k *EpochKey, sender crdt.DeviceID, old []*EpochKey) ([]byte, error) {
	if len(old) > MaxBacklinks {
		return nil, fmt.Errorf("%w: %d back-linked epochs, at most %d", ErrMalformed, len(old), MaxBacklinks)
	}
	entries := make([]backlinkEntry, 0, len(old))
	for _, o := range old {
		if o.gone {
			return nil, fmt.Errorf("%w: back-linked epoch %s was destroyed", ErrNoKey, o.id)
		}
		if o.room != k.room || o.id == k.id {
			return nil, fmt.Errorf("%w: back-linked epoch %s is of another room or the new epoch", ErrMalformed, o.id)
		}
		entries = append(entries, backlinkEntry{Epoch: o.id, Secret: o.secret[:]})
	}
	slices.SortFunc(entries, func(a, b backlinkEntry) int { return bytes.Compare(a.Epoch[:], b.Epoch[:]) })
	entries = slices.CompactFunc(entries, func(a, b backlinkEntry) bool { return a.Epoch == b.Epoch })
	pt, err := crdt.Marshal(entries)
	if err != nil {
		return nil, fmt.Errorf("%w: back-link: %v", ErrMalformed, err)
	}
	defer clear(pt)
	nonce := make([]byte, chacha20poly1305.NonceSizeX, chacha20poly1305.NonceSizeX+len(pt)+chacha20poly1305.Overhead)
	if _, err := io.ReadFull(rand, nonce); err != nil {
		return nil, fmt.Errorf("e2ee: read randomness: %w", err)
	}
	aead, aad := backlinkContext(k, sender)
	return aead.Seal(nonce, nonce, pt, aad), nil
}

// OpenBacklink opens the back-link with the rotation's own epoch key and
// returns the superseded epoch keys, each checked against its ID. A
// rotation without a back-link returns none. Walking rotations back through
// their back-links reaches the room's first epoch (policy `shared`) or the
// last barrier.
func (r *Rotation) OpenBacklink(k *EpochKey) ([]*EpochKey, error) {
	if k == nil || k.gone || k.room != r.Room || k.id != r.Epoch {
		return nil, fmt.Errorf("%w: back-link of epoch %s needs that epoch's key", ErrNoKey, r.Epoch)
	}
	if r.Backlink == nil {
		return nil, nil
	}
	if len(r.Backlink) < chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead {
		return nil, fmt.Errorf("%w: back-link of %d bytes", ErrMalformed, len(r.Backlink))
	}
	aead, aad := backlinkContext(k, r.Sender)
	n := chacha20poly1305.NonceSizeX
	pt, err := aead.Open(nil, r.Backlink[:n], r.Backlink[n:], aad)
	if err != nil {
		return nil, fmt.Errorf("%w: back-link", ErrDecrypt)
	}
	defer clear(pt)
	var entries []backlinkEntry
	if err := crdt.UnmarshalCanonical(pt, &entries); err != nil {
		return nil, fmt.Errorf("%w: back-link entries: %v", ErrMalformed, err)
	}
	if len(entries) == 0 || len(entries) > MaxBacklinks {
		return nil, fmt.Errorf("%w: %d back-link entries", ErrMalformed, len(entries))
	}
	out := make([]*EpochKey, 0, len(entries))
	for i, e := range entries {
		if i > 0 && bytes.Compare(entries[i-1].Epoch[:], e.Epoch[:]) >= 0 {
			return nil, fmt.Errorf("%w: back-link entries not sorted and unique", ErrMalformed)
		}
		ok, err := openedSecret(r.Room, e.Epoch, e.Secret)
		clear(e.Secret)
		if err != nil {
			for _, o := range out {
				o.Destroy()
			}
			return nil, err
		}
		out = append(out, ok)
	}
	return out, nil
}

// KeyForward gives an existing epoch to devices that lack it: the healing
// step for a device added concurrently with a rotation, and the way a new
// member of a `shared` room (or a user's new device) gets the live epochs.
// Wraps are bound exactly like a rotation's (the sender is the forwarder).
//
// Wire form: canonical CBOR map {epoch: bytes(32), wraps: [...]}.
type KeyForward struct {
	Room   crdt.RoomID   `cbor:"-"`
	Sender crdt.DeviceID `cbor:"-"`

	Epoch EpochID `cbor:"epoch"`
	Wraps []Wrap  `cbor:"wraps"`
}

// Forward wraps k to the given devices.
func Forward(sender crdt.DeviceID, k *EpochKey, to []*KEMRecord) (*KeyForward, error) {
	if k == nil || k.gone {
		return nil, fmt.Errorf("%w: forward of a destroyed epoch", ErrNoKey)
	}
	wraps, err := sealWraps(k, sender, to)
	if err != nil {
		return nil, err
	}
	return &KeyForward{Room: k.room, Sender: sender, Epoch: k.id, Wraps: wraps}, nil
}

// Recipients lists the wrapped devices, sorted.
func (f *KeyForward) Recipients() []crdt.DeviceID { return recipientsOf(f.Wraps) }

// Validate checks the format rules.
func (f *KeyForward) Validate() error {
	if f.Room == "" || f.Epoch.IsZero() {
		return fmt.Errorf("%w: forward without a room or epoch", ErrMalformed)
	}
	return checkWraps(f.Wraps)
}

// Marshal encodes the forward as canonical CBOR.
func (f *KeyForward) Marshal() ([]byte, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	b, err := crdt.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("%w: forward: %v", ErrMalformed, err)
	}
	return b, nil
}

// DecodeKeyForward decodes a forward carried by an event of room authored
// by sender, strictly.
func DecodeKeyForward(room crdt.RoomID, sender crdt.DeviceID, b []byte) (*KeyForward, error) {
	var f KeyForward
	if err := crdt.UnmarshalCanonical(b, &f); err != nil {
		return nil, fmt.Errorf("%w: forward: %v", ErrMalformed, err)
	}
	f.Room, f.Sender = room, sender
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

// Open unwraps the forwarded secret for me; errors as Rotation.Open.
func (f *KeyForward) Open(me DeviceKEM) (*EpochKey, error) {
	return openWraps(f.Room, f.Epoch, f.Sender, f.Wraps, me)
}
