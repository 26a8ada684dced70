// Package rooms is the pure room state machine of Parley: the bodies of
// control events (create, member, power, join rules, room profile),
// authorization of each event from its causal past, resolution of concurrent
// state, and the visible timeline.
//
// It must not do I/O: no libp2p, no badger, no net, no os/exec, no wall
// clock, no global randomness. It sees only events the crdt package has
// already judged stateless- and causally-valid, fed in a causal order.
package rooms
