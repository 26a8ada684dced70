package crdt

import "sync"

// memo is a bounded set of keys whose verification succeeded. It memoizes
// pure functions (no I/O, no clock): a certificate's or a signature's
// validity never changes, so the cache cannot change a result. It keeps two
// generations and drops the older one when the newer fills, so a hot key
// survives a turnover.
type memo struct {
	mu        sync.Mutex
	cur, prev map[string]struct{} // guarded by mu
	max       int
}

func (m *memo) has(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.cur[key]; ok {
		return true
	}
	_, ok := m.prev[key]
	return ok
}

func (m *memo) add(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur == nil || len(m.cur) >= m.max {
		m.prev, m.cur = m.cur, make(map[string]struct{}, m.max/4)
	}
	m.cur[key] = struct{}{}
}

// certCache remembers device certificates that verified, so that each
// (user, device) pair costs one Ed25519 verification per process instead of
// one per event.
var certCache = memo{max: 1 << 14}

// sigCache remembers envelopes whose signature verified, keyed by the
// envelope's digest (which covers the signature, the certificate and every
// signed field). The gossip validator and the engine both decode an event,
// and a simulation runs many nodes in one process; each envelope is then
// verified once.
var sigCache = memo{max: 1 << 16}

func checkCertCached(user UserID, device DeviceID, cert []byte) bool {
	key := certKey(user, device, cert)
	if certCache.has(key) {
		return true
	}
	if !CheckDeviceCert(user, device, cert) {
		return false
	}
	certCache.add(key)
	return true
}

func certKey(user UserID, device DeviceID, cert []byte) string {
	return string(user[:]) + string(device[:]) + string(cert)
}

// ForgetVerified empties the verification caches, so that the next decode of
// every event pays for its signature again. Benchmarks that decode the same
// events in every iteration call it; nothing else needs to.
func ForgetVerified() {
	for _, m := range []*memo{&certCache, &sigCache} {
		m.mu.Lock()
		m.cur, m.prev = nil, nil
		m.mu.Unlock()
	}
}
