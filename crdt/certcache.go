package crdt

import "sync"

// certCache remembers device certificates that verified, so that each
// (user, device) pair costs one Ed25519 verification per process instead of
// one per event. It memoizes a pure function (no I/O, no clock): a
// certificate's validity never changes, so the cache cannot change a result;
// it is bounded by starting over when full.
var certCache struct {
	mu sync.Mutex
	ok map[string]struct{} // user ‖ device ‖ cert; guarded by mu
}

const certCacheMax = 1 << 14

func checkCertCached(user UserID, device DeviceID, cert []byte) bool {
	key := string(user[:]) + string(device[:]) + string(cert)
	certCache.mu.Lock()
	_, hit := certCache.ok[key]
	certCache.mu.Unlock()
	if hit {
		return true
	}
	if !CheckDeviceCert(user, device, cert) {
		return false
	}
	certCache.mu.Lock()
	if certCache.ok == nil || len(certCache.ok) >= certCacheMax {
		certCache.ok = map[string]struct{}{}
	}
	certCache.ok[key] = struct{}{}
	certCache.mu.Unlock()
	return true
}
