// Package p2p holds the peer-to-peer plumbing of a node that needs no room
// engine: today the gossip budget of limited (relayed) connections
// (limited.go, docs/protocol.md §9.2). The sync, gossip, invite and link
// protocols are to move here behind a small engine interface defined on
// this side (docs/design.md, "Package layout").
//
// It must not import the node or the engine, reach the store, or read the
// wall clock for protocol decisions; it works on the libp2p host and the
// streams it is handed.
package p2p
