// Package mediasvc is a node's media service: the blob store seen from the
// network. It serves blocks to peers and fetches blobs from them over the
// media protocol (Protocol, docs/protocol.md), pulls blocks through for
// peers that share a room with the node, collects blobs nothing refers to,
// imports files and avatars (encrypted under a fresh key) and writes them
// out decrypted, and reads and writes the media blocks of archives.
//
// It must not know rooms, events or the engine: what it needs from them
// comes in as plain values (the roots to keep when it collects) and as the
// relay policy (SetRelayPolicy). The node wires it to the engine and the
// API (node/handlers_media.go, node/media_keep.go). The pure media format
// (encryption, manifests, stores) is package media.
package mediasvc

import (
	"errors"
	"fmt"

	"github.com/parley-p2p/parley/api"
)

// ErrClosed: a request ended because its context did (the daemon is
// stopping or the client went away).
var ErrClosed = errors.New("mediasvc: closed")

func errorf(k api.Kind, format string, args ...any) error {
	return &api.Error{Kind: k, Msg: fmt.Sprintf(format, args...)}
}
