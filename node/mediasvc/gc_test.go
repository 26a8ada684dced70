package mediasvc

import (
	"bytes"
	"runtime"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/media"
)

// testMedia is a media component on a memory store whose clock the test
// moves.
func testMedia() (*Service, *time.Time) {
	m := New(nil, media.NewMemStore(), nil)
	now := time.Unix(1_000_000, 0)
	m.SetClock(func() time.Time { return now })
	return m, &now
}

func holds(t *testing.T, m *Service, s string) bool {
	t.Helper()
	c, err := cid.Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	missing, err := media.Missing(m.store, c)
	return err == nil && len(missing) == 0
}

// A collection waits for the imports, fetches and reads in progress (they
// hold gcMu shared), and keeps what they touched.
func TestMediaGCWaitsForFetches(t *testing.T) {
	m, now := testMedia()
	ref, err := m.ImportBytes(bytes.NewReader([]byte("fetched a moment ago")))
	if err != nil {
		t.Fatal(err)
	}
	m.gcMu.RLock() // a fetch in progress
	done := make(chan api.MediaGCResp, 1)
	go func() {
		r, err := m.Collect(nil, time.Minute)
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	deadline := time.Now().Add(10 * time.Second)
	for m.gcMu.TryRLock() { // succeeds until the collection waits for the lock
		m.gcMu.RUnlock()
		if time.Now().After(deadline) {
			t.Fatal("the collection never waited for the fetch")
		}
		runtime.Gosched()
	}
	select {
	case r := <-done:
		t.Fatalf("collected during a fetch: %+v", r)
	default:
	}
	*now = now.Add(30 * time.Second) // within the grace period
	m.gcMu.RUnlock()
	if r := <-done; r.Blocks != 0 || !holds(t, m, ref.CID) {
		t.Fatalf("collected %+v", r)
	}
}
