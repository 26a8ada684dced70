package crdt

import (
	"runtime"
	"sync"

	"github.com/hdevalence/ed25519consensus"
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
type sigBatch struct {
	bv ed25519consensus.BatchVerifier
	n  int
}

func newSigBatch(size int) *sigBatch {
	return &sigBatch{bv: ed25519consensus.NewPreallocatedBatchVerifier(size)}
}

func (b *sigBatch) add(k PublicKey, msg, sig []byte) {
	b.bv.Add(k[:], msg, sig)
	b.n++
}

// verify reports whether every entry verifies; an empty batch does not.
func (b *sigBatch) verify() bool { return b.n > 0 && b.bv.Verify() }
