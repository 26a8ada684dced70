// Package p2p is a node's peer protocols: the room gate (the room-proof
// exchange and the gossipsub filter built on it, roomgate.go), pull sync
// and gap repair (sync.go, repair.go), gossip of events and heads with its
// validator, peer scoring and junk accounting (gossip.go, peerscore.go,
// junkcpu.go), the gossip budget of limited (relayed) connections
// (limited.go), peer records, the address book and rendezvous on the DHT
// (peerrecords.go, addrbook.go, rendezvous.go), the invite protocol
// (invite.go), device linking (link.go), and the Tracer interfaces
// through which simulations and metrics count what the protocols do.
// docs/protocol.md is what they speak.
//
// It reaches the room engine only through SyncEngine, GossipEngine,
// InviteEngine and LinkEngine (engine.go, invite.go, link.go): it must not
// import the node or the engine, decide what a room's rules accept (the
// engine's GossipJudge does), or write events to the store; it reads
// stored events only to serve them (Syncer), and writes only the address
// book's node-local key (AddrBookStore). The node builds and wires it
// (node/replica.go, node/node.go). See docs/design.md §1.1.
package p2p
