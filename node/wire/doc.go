// Package wire holds what every Parley peer protocol reads and admits its
// peers through: a frame reader that checks a frame's length against the
// bound of what may come next, and reserves large frames in the stream's
// resource scope, before allocating anything; and per-peer stream caps and
// token buckets (docs/protocol.md, "Limits").
//
// It must not know any protocol's messages, and must not reach the store,
// the engine or the network beyond the streams it is handed. The node
// wires the libp2p resource manager (node/wirelimits.go); the protocols
// (node/p2p, node/mediasvc, the node's room gate and TURN relay) build on
// this package.
package wire
