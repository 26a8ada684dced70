package crdt

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/hdevalence/ed25519consensus"
)

// PublicKey is an Ed25519 public key: a user's master key or a device's
// signing key.
type PublicKey [ed25519.PublicKeySize]byte

// UserID identifies a user: the public half of the user's master key.
type UserID = PublicKey

// DeviceID identifies a device: the public half of its signing key.
type DeviceID = PublicKey

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// String renders the key as lower-case unpadded base32 (52 characters).
func (k PublicKey) String() string { return strings.ToLower(b32.EncodeToString(k[:])) }

// IsZero reports whether k is the zero key.
func (k PublicKey) IsZero() bool { return k == PublicKey{} }

// ErrBadKey is returned for text or bytes that are not a public key.
var ErrBadKey = errors.New("crdt: malformed key")

// ParseKey parses the String form of a PublicKey.
func ParseKey(s string) (PublicKey, error) {
	var k PublicKey
	b, err := b32.DecodeString(strings.ToUpper(s))
	if err != nil || len(b) != len(k) {
		return k, fmt.Errorf("%w: %q", ErrBadKey, s)
	}
	copy(k[:], b)
	return k, nil
}

// KeyFromBytes copies a 32-byte slice into a PublicKey.
func KeyFromBytes(b []byte) (PublicKey, error) {
	var k PublicKey
	if len(b) != len(k) {
		return k, ErrBadKey
	}
	copy(k[:], b)
	return k, nil
}

// Verify checks an Ed25519 signature by k over msg under the one rule of
// docs/protocol.md 1.4 (ZIP-215), which DecodeBatch's batches apply too.
// Every Ed25519 check in Parley goes through here or through DecodeBatch.
func (k PublicKey) Verify(msg, sig []byte) bool {
	return ed25519consensus.Verify(k[:], msg, sig)
}

// SecretKey is an Ed25519 private key. It never prints its secret half.
type SecretKey struct {
	_    [0]func() // not comparable
	priv ed25519.PrivateKey
}

// GenerateKey makes a new secret key from r (crypto/rand when r is nil).
func GenerateKey(r io.Reader) (*SecretKey, error) {
	if r == nil {
		r = rand.Reader
	}
	_, priv, err := ed25519.GenerateKey(r)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return &SecretKey{priv: priv}, nil
}

// SecretKeyFromSeed rebuilds a key from its 32-byte seed.
func SecretKeyFromSeed(seed []byte) (*SecretKey, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, ErrBadKey
	}
	return &SecretKey{priv: ed25519.NewKeyFromSeed(seed)}, nil
}

// Seed returns a copy of the 32-byte seed, for storing the key in a 0600 file.
func (s *SecretKey) Seed() []byte { return append([]byte(nil), s.priv.Seed()...) }

// Public returns the public half.
func (s *SecretKey) Public() PublicKey {
	var k PublicKey
	copy(k[:], s.priv[32:])
	return k
}

// Sign signs msg.
func (s *SecretKey) Sign(msg []byte) []byte { return ed25519.Sign(s.priv, msg) }

// Equal compares two secret keys in constant time.
func (s *SecretKey) Equal(o *SecretKey) bool {
	return subtle.ConstantTimeCompare(s.priv, o.priv) == 1
}

// String never shows the secret.
func (s *SecretKey) String() string { return "SecretKey(" + s.Public().String() + ")" }

// GoString never shows the secret.
func (s *SecretKey) GoString() string { return s.String() }

// Format never shows the secret, whatever the verb.
func (s *SecretKey) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }

// deviceCertTag separates device certificates from every other signature.
const deviceCertTag = "parley/device-cert/v1\x00"

// Identity is what a device signs events with: its own key, the user it
// belongs to and the user's certificate over the device key.
type Identity struct {
	User   UserID
	Device *SecretKey
	Cert   []byte // Ed25519 by the user's master key over deviceCertTag ‖ device ‖ user
}

// CertifyDevice makes the certificate binding device to the user of master.
func CertifyDevice(master *SecretKey, device PublicKey) []byte {
	return master.Sign(certMessage(master.Public(), device))
}

// CheckDeviceCert verifies that cert binds device to user.
func CheckDeviceCert(user UserID, device DeviceID, cert []byte) bool {
	return user.Verify(certMessage(user, device), cert)
}

func certMessage(user UserID, device DeviceID) []byte {
	m := make([]byte, 0, len(deviceCertTag)+64)
	m = append(m, deviceCertTag...)
	m = append(m, device[:]...)
	return append(m, user[:]...)
}

// NewIdentity makes a fresh device identity for the user of master.
func NewIdentity(master *SecretKey, r io.Reader) (*Identity, error) {
	dev, err := GenerateKey(r)
	if err != nil {
		return nil, err
	}
	return &Identity{User: master.Public(), Device: dev, Cert: CertifyDevice(master, dev.Public())}, nil
}
