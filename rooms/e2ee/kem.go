package e2ee

import (
	"crypto/hpke"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/parley-p2p/parley/crdt"
)

// The HPKE suite of every wrap: X-Wing (ML-KEM-768 + X25519, KEM 0x647a),
// HKDF-SHA256, ChaCha20-Poly1305, base mode.
var (
	kem     = hpke.MLKEM768X25519()
	kdf     = hpke.HKDFSHA256()
	aeadAlg = hpke.ChaCha20Poly1305()
)

// Sizes of the X-Wing suite.
const (
	KEMPublicKeySize = 1216              // X-Wing encapsulation key
	KEMSeedSize      = 32                // X-Wing decapsulation key (a seed)
	encSize          = 1120              // X-Wing encapsulated key
	WrapSize         = encSize + 32 + 16 // enc ‖ ChaCha20-Poly1305(secret)
)

// KEMPublicKey is a device's X-Wing public key.
type KEMPublicKey [KEMPublicKeySize]byte

// Fingerprint is SHA-256("parley/v1/kem-key-id" ‖ key). Wraps bind it in
// their HPKE info.
func (k KEMPublicKey) Fingerprint() [32]byte {
	h := sha256.New()
	h.Write([]byte(labelKEMKeyID))
	h.Write(k[:])
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// String renders the start of the fingerprint.
func (k KEMPublicKey) String() string {
	fp := k.Fingerprint()
	return "kem:" + hex.EncodeToString(fp[:8])
}

func (k KEMPublicKey) hpke() (hpke.PublicKey, error) {
	pk, err := kem.NewPublicKey(k[:])
	if err != nil {
		return nil, fmt.Errorf("%w: kem public key: %v", ErrMalformed, err)
	}
	return pk, nil
}

// KEMSecretKey is a device's X-Wing private key. It never prints.
type KEMSecretKey struct {
	_    [0]func() // not comparable
	seed [KEMSeedSize]byte
	sk   hpke.PrivateKey
	pub  KEMPublicKey
}

// GenerateKEMKey makes a KEM key from 32 bytes of rand.
func GenerateKEMKey(rand io.Reader) (*KEMSecretKey, error) {
	if rand == nil {
		return nil, fmt.Errorf("%w: nil random source", ErrMalformed)
	}
	var seed [KEMSeedSize]byte
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		return nil, fmt.Errorf("e2ee: read randomness: %w", err)
	}
	return KEMSecretKeyFromSeed(seed[:])
}

// KEMSecretKeyFromSeed rebuilds a KEM key from its 32-byte seed.
func KEMSecretKeyFromSeed(seed []byte) (*KEMSecretKey, error) {
	if len(seed) != KEMSeedSize {
		return nil, fmt.Errorf("%w: kem seed of %d bytes", ErrMalformed, len(seed))
	}
	sk, err := kem.NewPrivateKey(seed)
	if err != nil {
		return nil, fmt.Errorf("%w: kem seed: %v", ErrMalformed, err)
	}
	k := &KEMSecretKey{sk: sk}
	copy(k.seed[:], seed)
	copy(k.pub[:], sk.PublicKey().Bytes())
	return k, nil
}

// Seed returns a copy of the seed, for the node to persist (mode 0600).
func (s *KEMSecretKey) Seed() []byte { return append([]byte(nil), s.seed[:]...) }

// Public returns the public key.
func (s *KEMSecretKey) Public() KEMPublicKey { return s.pub }

// Equal compares two keys in constant time.
func (s *KEMSecretKey) Equal(o *KEMSecretKey) bool {
	return s != nil && o != nil && subtle.ConstantTimeCompare(s.seed[:], o.seed[:]) == 1
}

// String never shows the secret.
func (s *KEMSecretKey) String() string { return "KEMSecretKey(" + s.pub.String() + ")" }

// GoString never shows the secret.
func (s *KEMSecretKey) GoString() string { return s.String() }

// Format never shows the secret, whatever the verb.
func (s *KEMSecretKey) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }

// KEMRecord publishes a device's KEM key: {device, kem_pub, seq}, signed by
// the device key over "parley/v1/kem-record\x00" ‖ canonical CBOR of the
// record without sig. A device rotates its KEM key by signing a record with
// a higher seq; rotations wrap to the latest record the rotator knows.
type KEMRecord struct {
	Device crdt.DeviceID `cbor:"device"`
	KEM    KEMPublicKey  `cbor:"kem_pub"`
	Seq    uint64        `cbor:"seq"`
	Sig    []byte        `cbor:"sig,omitempty"`
}

// SignKEMRecord makes the record of kem at seq, signed by device.
func SignKEMRecord(device *crdt.SecretKey, kem KEMPublicKey, seq uint64) (*KEMRecord, error) {
	r := &KEMRecord{Device: device.Public(), KEM: kem, Seq: seq}
	msg, err := r.signedBytes()
	if err != nil {
		return nil, err
	}
	r.Sig = device.Sign(msg)
	return r, nil
}

func (r *KEMRecord) signedBytes() ([]byte, error) {
	u := *r
	u.Sig = nil
	b, err := crdt.Marshal(&u)
	if err != nil {
		return nil, fmt.Errorf("%w: kem record: %v", ErrMalformed, err)
	}
	return append([]byte(labelKEMRecord+"\x00"), b...), nil
}

// Verify checks the record's signature and that its key parses.
func (r *KEMRecord) Verify() error {
	msg, err := r.signedBytes()
	if err != nil {
		return err
	}
	if !r.Device.Verify(msg, r.Sig) {
		return fmt.Errorf("%w: kem record signature", ErrMalformed)
	}
	_, err = r.KEM.hpke()
	return err
}

// Marshal encodes the signed record as canonical CBOR.
func (r *KEMRecord) Marshal() ([]byte, error) {
	b, err := crdt.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("%w: kem record: %v", ErrMalformed, err)
	}
	return b, nil
}

// DecodeKEMRecord decodes a record strictly (canonical CBOR, no unknown
// fields) and verifies it.
func DecodeKEMRecord(b []byte) (*KEMRecord, error) {
	var r KEMRecord
	if err := crdt.UnmarshalCanonical(b, &r); err != nil {
		return nil, fmt.Errorf("%w: kem record: %v", ErrMalformed, err)
	}
	if err := r.Verify(); err != nil {
		return nil, err
	}
	return &r, nil
}

// DeviceKEM is what a device opens wraps with: its ID, and one of its KEM
// keys with the seq of the record that published it.
type DeviceKEM struct {
	Device crdt.DeviceID
	Seq    uint64
	Key    *KEMSecretKey
}
