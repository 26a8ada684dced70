package p2p

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestMemberScores: Score answers from the cache without waiting for the
// node (0 until the first lookup is answered), looks a stranger up again
// after strangerTTL and a member after memberTTL, or at once after Stale,
// and forgets peers it was not asked about for memberForget.
func TestMemberScores(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		members := map[peer.ID]bool{"m": true}
		asked := map[peer.ID]int{}
		s := NewMemberScores(func(_ context.Context, p peer.ID) bool {
			mu.Lock()
			defer mu.Unlock()
			asked[p]++
			return members[p]
		})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go s.Serve(ctx)
		count := func(p peer.ID) int { mu.Lock(); defer mu.Unlock(); return asked[p] }

		if got := s.Score("m"); got != 0 {
			t.Fatalf("first score of a member %v, want 0 (not looked up yet)", got)
		}
		s.Score("x")
		synctest.Wait()
		if got := s.Score("m"); got != MemberBonus {
			t.Fatalf("member %v, want %v", got, MemberBonus)
		}
		if got := s.Score("x"); got != 0 {
			t.Fatalf("stranger %v, want 0", got)
		}
		if count("m") != 1 || count("x") != 1 {
			t.Fatalf("lookups %v, want one each", asked)
		}

		// The stranger joins: seen within strangerTTL.
		mu.Lock()
		members["x"] = true
		mu.Unlock()
		time.Sleep(strangerTTL + time.Second)
		s.Score("x")
		s.Score("m")
		synctest.Wait()
		if got := s.Score("x"); got != MemberBonus {
			t.Fatalf("new member %v, want %v", got, MemberBonus)
		}
		if count("m") != 1 {
			t.Fatalf("member looked up %d times before memberTTL", count("m"))
		}

		// The member leaves: seen within memberTTL.
		mu.Lock()
		members["m"] = false
		mu.Unlock()
		time.Sleep(memberTTL)
		s.Score("m")
		synctest.Wait()
		if got := s.Score("m"); got != 0 {
			t.Fatalf("former member %v, want 0", got)
		}

		// Stale: the next Score looks every peer up again, before its TTL.
		mu.Lock()
		members["x"] = false
		mu.Unlock()
		s.Stale()
		s.Score("x")
		synctest.Wait()
		if got := s.Score("x"); got != 0 {
			t.Fatalf("member that left, after Stale: %v, want 0", got)
		}

		time.Sleep(2 * memberForget)
		synctest.Wait()
		s.mu.Lock()
		n := len(s.m)
		s.mu.Unlock()
		if n != 0 {
			t.Fatalf("%d peers kept after memberForget", n)
		}
		cancel()
	})
}
