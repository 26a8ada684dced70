package node

import (
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

type peerID = peer.ID

func peerIDFromKey(sk crypto.PrivKey) (peer.ID, error) { return peer.IDFromPrivateKey(sk) }
