//go:build invariants

package crdt

// Invariants is true in builds with the `invariants` tag: the Log checks
// its bookkeeping after every change (Log.Check) and panics when it is
// broken, and node checks the engine against its store after every commit.
// It costs O(events) per call, so it is for tests only.
const Invariants = true
