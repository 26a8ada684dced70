package e2ee

import (
	"crypto/hpke"
	"fmt"

	"github.com/parley-p2p/parley/crdt"
)

// BoxOverhead is what SealToDevice adds to a message: the X-Wing
// encapsulated key and the ChaCha20-Poly1305 tag.
const BoxOverhead = encSize + 16

type boxInfo struct {
	_         struct{} `cbor:",toarray"`
	Label     string
	Room      []byte
	Recipient []byte
	KEMKey    []byte
	Sender    []byte
}

func boxContext(room crdt.RoomID, recipient crdt.DeviceID, kemKey KEMPublicKey, sender crdt.DeviceID) []byte {
	fp := kemKey.Fingerprint()
	b, err := crdt.Marshal(boxInfo{Label: labelBox, Room: []byte(room), Recipient: recipient[:], KEMKey: fp[:], Sender: sender[:]})
	if err != nil {
		panic("e2ee: encode box info: " + err.Error()) // byte strings always encode
	}
	return b
}

// SealToDevice seals msg, sent by device sender in room, to the device of
// the verified record to (HPKE with the suite of wraps):
//
//	info   = canonical CBOR ["parley/v1/device-box", room, recipient device,
//	                         fingerprint(recipient KEM key), sender device]
//	sealed = enc (1120 B) ‖ ChaCha20-Poly1305(msg) (len(msg) + 16 B)
//
// Only that device opens it; a box made for another room, recipient, KEM
// key or sender does not open.
func SealToDevice(room crdt.RoomID, sender crdt.DeviceID, to *KEMRecord, msg []byte) ([]byte, error) {
	pk, err := to.KEM.hpke()
	if err != nil {
		return nil, err
	}
	enc, s, err := hpke.NewSender(pk, kdf, aeadAlg, boxContext(room, to.Device, to.KEM, sender))
	if err != nil {
		return nil, fmt.Errorf("e2ee: hpke sender: %w", err)
	}
	ct, err := s.Seal(nil, msg)
	if err != nil {
		return nil, fmt.Errorf("e2ee: hpke seal: %w", err)
	}
	return append(enc, ct...), nil
}

// OpenFromDevice opens a box SealToDevice sealed from sender in room to
// me.
func OpenFromDevice(room crdt.RoomID, sender crdt.DeviceID, me DeviceKEM, sealed []byte) ([]byte, error) {
	if me.Key == nil {
		return nil, fmt.Errorf("%w: no KEM key given", ErrNoKey)
	}
	if len(sealed) < BoxOverhead {
		return nil, fmt.Errorf("%w: box of %d bytes", ErrMalformed, len(sealed))
	}
	r, err := hpke.NewRecipient(sealed[:encSize], me.Key.sk, kdf, aeadAlg, boxContext(room, me.Device, me.Key.pub, sender))
	if err != nil {
		return nil, fmt.Errorf("%w: box: %v", ErrDecrypt, err)
	}
	msg, err := r.Open(nil, sealed[encSize:])
	if err != nil {
		return nil, fmt.Errorf("%w: box", ErrDecrypt)
	}
	return msg, nil
}
