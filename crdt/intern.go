package crdt

import (
	"runtime"
	"sync"
	"weak"
)

// interned maps event IDs to the decoded events still in use somewhere in
// the process, so that decoding the same envelope again returns the same
// immutable *Event instead of another copy. A daemon decodes most events
// twice (gossip validation, then the engine); a simulation runs thousands
// of nodes in one process that each hold every event of a room, and
// sharing is what keeps a thousand-node room in memory. Entries go when
// their event is collected.
var interned struct {
	mu sync.Mutex
	m  map[EventID]weak.Pointer[Event] // guarded by mu
}

// intern returns the live event already decoded from the same envelope and
// the same presence of a body, or e after recording it. Events are
// immutable once decoded; callers that change one (WithoutBody) copy it.
func intern(e *Event) *Event {
	interned.mu.Lock()
	defer interned.mu.Unlock()
	if interned.m == nil {
		interned.m = map[EventID]weak.Pointer[Event]{}
	}
	if p, ok := interned.m[e.ID]; ok {
		if old := p.Value(); old != nil {
			if (old.Body == nil) == (e.Body == nil) {
				return old
			}
			return e // one with a body and one without: keep both, remember the first
		}
	}
	interned.m[e.ID] = weak.Make(e)
	runtime.AddCleanup(e, forget, e.ID)
	return e
}

func forget(id EventID) {
	interned.mu.Lock()
	defer interned.mu.Unlock()
	if p, ok := interned.m[id]; ok && p.Value() == nil {
		delete(interned.m, id)
	}
}
