package e2ee

import (
	"bytes"
	"crypto/hpke"
	"fmt"
	"slices"

	"github.com/parley-p2p/parley/crdt"
)

// MaxRecipients bounds the wraps of one rotation or forward.
const MaxRecipients = 1024

// Wrap is an epoch secret sealed to one device with HPKE (X-Wing,
// HKDF-SHA256, ChaCha20-Poly1305, base mode):
//
//	info = canonical CBOR ["parley/v1/wrap", room, epoch_id, recipient device,
//	                        fingerprint(recipient KEM key), sender device]
//	aad  = epoch_id
//	Sealed = enc (1120 B) ‖ ChaCha20-Poly1305(secret) (48 B)
//
// On the wire it is the CBOR array [device, kem_seq, sealed].
type Wrap struct {
	_      struct{} `cbor:",toarray"`
	Device crdt.DeviceID
	KEMSeq uint64
	Sealed []byte
}

type wrapInfo struct {
	_         struct{} `cbor:",toarray"`
	Label     string
	Room      []byte
	Epoch     []byte
	Recipient []byte
	KEMKey    []byte
	Sender    []byte
}

func wrapContext(room crdt.RoomID, epoch EpochID, recipient crdt.DeviceID, kemKey KEMPublicKey, sender crdt.DeviceID) []byte {
	fp := kemKey.Fingerprint()
	b, err := crdt.Marshal(wrapInfo{
		Label: labelWrap, Room: []byte(room), Epoch: epoch[:],
		Recipient: recipient[:], KEMKey: fp[:], Sender: sender[:],
	})
	if err != nil {
		panic("e2ee: encode wrap info: " + err.Error()) // byte strings always encode
	}
	return b
}

// sealWraps wraps k's secret to every recipient, sorted by device. The
// records must have been verified by the caller (they come from device logs).
func sealWraps(k *EpochKey, sender crdt.DeviceID, to []*KEMRecord) ([]Wrap, error) {
	return sealSecret(k.room, k.id, k.secret[:], sender, to)
}

func sealSecret(room crdt.RoomID, epoch EpochID, secret []byte, sender crdt.DeviceID, to []*KEMRecord) ([]Wrap, error) {
	if len(to) == 0 || len(to) > MaxRecipients {
		return nil, fmt.Errorf("%w: %d recipients (1..%d)", ErrMalformed, len(to), MaxRecipients)
	}
	recs := slices.Clone(to)
	slices.SortFunc(recs, func(a, b *KEMRecord) int { return bytes.Compare(a.Device[:], b.Device[:]) })
	wraps := make([]Wrap, len(recs))
	for i, r := range recs {
		if i > 0 && recs[i-1].Device == r.Device {
			return nil, fmt.Errorf("%w: device %s listed twice", ErrMalformed, r.Device)
		}
		pk, err := r.KEM.hpke()
		if err != nil {
			return nil, err
		}
		enc, s, err := hpke.NewSender(pk, kdf, aeadAlg, wrapContext(room, epoch, r.Device, r.KEM, sender))
		if err != nil {
			return nil, fmt.Errorf("e2ee: hpke sender: %w", err)
		}
		ct, err := s.Seal(epoch[:], secret)
		if err != nil {
			return nil, fmt.Errorf("e2ee: hpke seal: %w", err)
		}
		wraps[i] = Wrap{Device: r.Device, KEMSeq: r.Seq, Sealed: append(enc, ct...)}
	}
	return wraps, nil
}

// checkWraps enforces the format: 1..MaxRecipients wraps, sorted by device,
// unique, each of WrapSize bytes.
func checkWraps(ws []Wrap) error {
	if len(ws) == 0 || len(ws) > MaxRecipients {
		return fmt.Errorf("%w: %d wraps (1..%d)", ErrMalformed, len(ws), MaxRecipients)
	}
	for i, w := range ws {
		if len(w.Sealed) != WrapSize {
			return fmt.Errorf("%w: wrap for %s has %d bytes, want %d", ErrMalformed, w.Device, len(w.Sealed), WrapSize)
		}
		if i > 0 && bytes.Compare(ws[i-1].Device[:], w.Device[:]) >= 0 {
			return fmt.Errorf("%w: wraps not sorted by device and unique", ErrMalformed)
		}
	}
	return nil
}

// openWraps finds me's wrap and opens it: HPKE, then the epoch-ID
// commitment.
func openWraps(room crdt.RoomID, epoch EpochID, sender crdt.DeviceID, ws []Wrap, me DeviceKEM) (*EpochKey, error) {
	if me.Key == nil {
		return nil, fmt.Errorf("%w: no KEM key given", ErrNoKey)
	}
	i, ok := slices.BinarySearchFunc(ws, me.Device, func(w Wrap, d crdt.DeviceID) int { return bytes.Compare(w.Device[:], d[:]) })
	if !ok {
		return nil, fmt.Errorf("%w: epoch %s is not wrapped to device %s", ErrNoKey, epoch, me.Device)
	}
	w := ws[i]
	if w.KEMSeq != me.Seq {
		return nil, fmt.Errorf("%w: epoch %s is wrapped to KEM key %d of device %s, not %d", ErrNoKey, epoch, w.KEMSeq, me.Device, me.Seq)
	}
	if len(w.Sealed) != WrapSize {
		return nil, fmt.Errorf("%w: wrap of %d bytes", ErrMalformed, len(w.Sealed))
	}
	info := wrapContext(room, epoch, me.Device, me.Key.pub, sender)
	r, err := hpke.NewRecipient(w.Sealed[:encSize], me.Key.sk, kdf, aeadAlg, info)
	if err != nil {
		return nil, fmt.Errorf("%w: wrap: %v", ErrDecrypt, err)
	}
	secret, err := r.Open(epoch[:], w.Sealed[encSize:])
	if err != nil {
		return nil, fmt.Errorf("%w: wrap", ErrDecrypt)
	}
	defer clear(secret)
	return openedSecret(room, epoch, secret)
}

func recipientsOf(ws []Wrap) []crdt.DeviceID {
	out := make([]crdt.DeviceID, len(ws))
	for i, w := range ws {
		out[i] = w.Device
	}
	return out
}
