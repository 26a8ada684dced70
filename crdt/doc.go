// Package crdt is the pure core of a Parley room log: the signed event
// envelope and its canonical DAG-CBOR encoding, content identifiers, stateless
// (R1) and causal (R2) validity, DAG bookkeeping (heads, orphans, the
// (device, seq) index and equivocation evidence), a deterministic
// linearization, and sync planning as pure functions (what to ask a peer for,
// what to serve it).
//
// It must not do I/O: no libp2p, no badger (outside the badgerstore
// sub-package), no net, no os/exec, no wall clock and no global randomness.
// Callers feed it inputs and perform the effects it returns, in the order
// documented on Ready. The Store interface is its only contact with
// persistence; MemStore and badgerstore.Store implement it.
package crdt
