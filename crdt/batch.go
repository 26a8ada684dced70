package crdt

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"hash"
	"runtime"
	"sync"

	"filippo.io/edwards25519"
)

// batchSize is how many signatures one batch verification covers. The
// saving per signature grows with the batch and levels off near 64; a
// failed batch costs one more verification per entry, so it stays small.
const batchSize = 64

// DecodeBatch is Decode for many frames at once: each result and error is
// the one Decode would give for that frame (docs/protocol.md 1.4: the same
// ZIP-215 rule decides either way), but the certificates and signatures are
// verified in batches on all cores. A batch that fails is verified again
// one signature at a time, so a bad event costs its batch, not the others.
func DecodeBatch(frames [][]byte) ([]*Event, []error) {
	return decodeBatch(len(frames), func(i int) (*parsed, error) {
		b := frames[i]
		if len(b) > MaxKeyEventSize+64 {
			return nil, ErrTooLarge
		}
		env, body, err := decodeFrame(b)
		if err != nil {
			return nil, err
		}
		return parseUnverified(env, body, "", true)
	})
}

// DecodeEnvelopes is DecodeEnvelope for many (envelope, body) pairs, with
// the signatures verified in batches like DecodeBatch. bodies[i] is nil when
// the body was purged.
func DecodeEnvelopes(envs, bodies [][]byte) ([]*Event, []error) {
	return decodeBatch(len(envs), func(i int) (*parsed, error) {
		return parseUnverified(envs[i], bodies[i], "", true)
	})
}

func decodeBatch(n int, parse func(int) (*parsed, error)) ([]*Event, []error) {
	out := make([]*Event, n)
	errs := make([]error, n)
	chunks := (n + batchSize - 1) / batchSize
	workers := min(runtime.GOMAXPROCS(0), chunks)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ps := make([]*parsed, batchSize)
			for c := w; c < chunks; c += workers {
				lo, hi := c*batchSize, min((c+1)*batchSize, n)
				for i := lo; i < hi; i++ {
					ps[i-lo], errs[i] = parse(i)
				}
				verifyBatch(ps[:hi-lo])
				for i := lo; i < hi; i++ {
					p := ps[i-lo]
					if p == nil {
						continue
					}
					if errs[i] = p.verifyOne(); errs[i] == nil {
						out[i], errs[i] = p.finish()
					}
					ps[i-lo] = nil
				}
			}
		}()
	}
	wg.Wait()
	return out, errs
}

// verifyBatch checks the certificates and signatures that ps still need in
// one batch. When the batch holds, it marks them verified (sigMsg nil) and
// remembers them; when it fails, it leaves them all for verifyOne, which
// finds the bad ones and gives each event the error Decode would give.
func verifyBatch(ps []*parsed) {
	bv := newSigBatch(2 * len(ps))
	certs := map[string]bool{}
	for _, p := range ps {
		if p == nil || p.sigMsg == nil {
			continue
		}
		key := certKey(p.e.User, p.e.Device, p.cert)
		if !certs[key] && !certCache.has(key) {
			certs[key] = true
			bv.add(p.e.User, certMessage(p.e.User, p.e.Device), p.cert)
		}
		bv.add(p.e.Device, p.sigMsg, p.sig)
	}
	if !bv.verify() {
		return
	}
	for key := range certs {
		certCache.add(key)
	}
	for _, p := range ps {
		if p != nil && p.sigMsg != nil {
			sigCache.add(string(p.id))
			p.sigMsg = nil
		}
	}
}

// sigBatch is a batch of Ed25519 checks under the rule of PublicKey.Verify
// (ZIP-215): verify holds iff Verify holds for every entry, except with
// probability about 2^-128 over the batch's random coefficients.
//
// It checks the equation of ed25519consensus's BatchVerifier,
//
//	[8](−Σ z_i s_i B + Σ z_i R_i + Σ z_i k_i A_i) = 0,
//
// with random 128-bit z_i and k_i = SHA-512(R_i ‖ A_i ‖ M_i), but sums the
// terms of entries that share a public key (the same 32 bytes) into one:
// Σ_{i: A_i = A} [z_i k_i]A = [Σ z_i k_i]A. The group element compared with
// the identity is the same, so the verdict is too; a page of a room's
// events, signed by a few devices, costs about half the multi-scalar
// multiplication and one point decompression per key instead of one per
// signature.
type sigBatch struct {
	entries []sigEntry
	keys    []PublicKey       // the distinct keys, in order of first use
	keyAt   map[PublicKey]int // index in keys
	bad     bool              // an entry had a signature of the wrong length
	h       hash.Hash
}

type sigEntry struct {
	key    int // index in keys
	sig    [64]byte
	digest [64]byte // SHA-512(R ‖ A ‖ M)
}

func newSigBatch(size int) *sigBatch {
	return &sigBatch{entries: make([]sigEntry, 0, size), keyAt: map[PublicKey]int{}, h: sha512.New()}
}

// add adds the check of sig by k over msg; it keeps no reference to them.
func (b *sigBatch) add(k PublicKey, msg, sig []byte) {
	if len(sig) != ed25519.SignatureSize {
		b.bad = true
		return
	}
	j, ok := b.keyAt[k]
	if !ok {
		j = len(b.keys)
		b.keys = append(b.keys, k)
		b.keyAt[k] = j
	}
	b.entries = append(b.entries, sigEntry{key: j})
	e := &b.entries[len(b.entries)-1]
	copy(e.sig[:], sig)
	b.h.Reset()
	b.h.Write(sig[:32])
	b.h.Write(k[:])
	b.h.Write(msg)
	b.h.Sum(e.digest[:0])
}

// verify reports whether every entry verifies; an empty batch does not.
func (b *sigBatch) verify() bool {
	n, m := len(b.entries), len(b.keys)
	if n == 0 || b.bad {
		return false
	}
	// Terms: [0] the base point, [1, 1+n) the R_i, [1+n, 1+n+m) the keys.
	scalars := make([]edwards25519.Scalar, 1+n+m)
	points := make([]edwards25519.Point, 1+n+m)
	sp := make([]*edwards25519.Scalar, len(scalars))
	pp := make([]*edwards25519.Point, len(points))
	for i := range sp {
		sp[i], pp[i] = &scalars[i], &points[i]
	}
	points[0].Set(edwards25519.NewGeneratorPoint())
	for j, k := range b.keys {
		if _, err := points[1+n+j].SetBytes(k[:]); err != nil {
			return false
		}
	}
	zs := make([]byte, 16*n)
	if _, err := rand.Read(zs); err != nil {
		return false
	}
	var zb [32]byte
	var s, k edwards25519.Scalar
	for i := range b.entries {
		e := &b.entries[i]
		if _, err := points[1+i].SetBytes(e.sig[:32]); err != nil {
			return false
		}
		z := &scalars[1+i]
		copy(zb[:16], zs[16*i:])
		if _, err := z.SetCanonicalBytes(zb[:]); err != nil {
			return false
		}
		if _, err := s.SetCanonicalBytes(e.sig[32:]); err != nil {
			return false
		}
		scalars[0].MultiplyAdd(z, &s, &scalars[0])
		if _, err := k.SetUniformBytes(e.digest[:]); err != nil {
			return false
		}
		a := &scalars[1+n+e.key]
		a.MultiplyAdd(z, &k, a)
	}
	scalars[0].Negate(&scalars[0])
	check := new(edwards25519.Point).VarTimeMultiScalarMult(sp, pp)
	check.MultByCofactor(check)
	return check.Equal(edwards25519.NewIdentityPoint()) == 1
}
