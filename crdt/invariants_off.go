//go:build !invariants

package crdt

// Invariants is false in ordinary builds; see invariants_on.go.
const Invariants = false
