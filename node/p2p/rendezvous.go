package p2p

import (
	"context"
	"log/slog"
	"time"

	"github.com/ipfs/go-cid"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/multiformats/go-multihash"

	"github.com/parley-p2p/parley/crdt"
)

// Rendezvous by room (docs/protocol.md §9.2): with the DHT on, the nodes
// that keep a room provide the room's rendezvous key, and `room join`
// without --via looks the key up to find them. The key is a labelled hash
// of the room id, so the DHT (and whoever reads its records) never learns
// the room id; it is unrelated to the room's reference on the wire
// (section 2.1), so records and topics cannot be matched either.

// rendezvousLabel separates the rendezvous key from every other hash of a
// room id.
const rendezvousLabel = "parley/room-rendezvous/1"

const (
	rendezvousEvery   = 10 * time.Minute // re-provide (records last 48 h; peers come and go)
	rendezvousPoll    = 5 * time.Second  // look for rooms not provided yet
	rendezvousLookup  = 20 * time.Second
	rendezvousMaxPeer = 8
)

// RendezvousKey is a room's rendezvous key: a CIDv1 (raw codec) of the
// SHA-256 multihash of rendezvousLabel, a zero byte and the room id bytes.
func RendezvousKey(room crdt.RoomID) cid.Cid {
	sum := labelled(rendezvousLabel, []byte(room))
	mh, err := multihash.Encode(sum[:], multihash.SHA2_256)
	if err != nil {
		panic(err) // SHA2_256 with 32 bytes always encodes
	}
	return cid.NewCidV1(cid.Raw, mh)
}

// Rendezvous provides the keys of the rooms a node keeps and finds the
// peers of a room.
type Rendezvous struct {
	h     host.Host
	kad   *dht.IpfsDHT
	rooms func(context.Context) []crdt.RoomID
	log   *slog.Logger
	kick  chan struct{} // capacity 1: provide now (a room was joined)
}

// NewRendezvous returns the rendezvous of h on the DHT kad for the rooms
// that rooms lists; nothing runs until Serve.
func NewRendezvous(h host.Host, kad *dht.IpfsDHT, rooms func(context.Context) []crdt.RoomID, log *slog.Logger) *Rendezvous {
	return &Rendezvous{h: h, kad: kad, rooms: rooms, log: log, kick: make(chan struct{}, 1)}
}

// Serve provides the key of every kept room as soon as the DHT has peers,
// and again every rendezvousEvery; it looks for new rooms every
// rendezvousPoll, or at once when asked (ProvideSoon).
func (r *Rendezvous) Serve(ctx context.Context) error {
	provided := map[crdt.RoomID]time.Time{}
	for {
		if r.kad.RoutingTable().Size() > 0 {
			for _, room := range r.rooms(ctx) {
				if time.Since(provided[room]) < rendezvousEvery {
					continue
				}
				pctx, cancel := context.WithTimeout(ctx, time.Minute)
				if err := r.kad.Provide(pctx, RendezvousKey(room), true); err != nil {
					r.log.Debug("rendezvous provide", "err", err)
				} else {
					provided[room] = time.Now()
				}
				cancel()
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.kick:
		case <-time.After(rendezvousPoll):
		}
	}
}

// ProvideSoon asks Serve to provide now. It never blocks.
func (r *Rendezvous) ProvideSoon() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Find connects to up to rendezvousMaxPeer providers of the room's key: at
// their addresses, or through a relay this node is connected to when they
// are behind a NAT. It reports how many it connected to.
func (r *Rendezvous) Find(ctx context.Context, room crdt.RoomID) int {
	ctx, cancel := context.WithTimeout(ctx, rendezvousLookup)
	defer cancel()
	n := 0
	for pi := range r.kad.FindProvidersAsync(ctx, RendezvousKey(room), rendezvousMaxPeer) {
		if pi.ID == r.h.ID() {
			continue
		}
		if r.dial(ctx, pi) {
			n++
		}
	}
	return n
}

func (r *Rendezvous) dial(ctx context.Context, pi peer.AddrInfo) bool {
	dctx, cancel := context.WithTimeout(network.WithAllowLimitedConn(ctx, "rendezvous"), 10*time.Second)
	defer cancel()
	ClearBackoff(r.h, pi.ID)
	if len(pi.Addrs) > 0 && r.h.Connect(dctx, pi) == nil {
		return true
	}
	// Through each connected relay: /p2p/RELAY/p2p-circuit/p2p/PEER.
	for _, relay := range r.h.Network().Peers() {
		if ok, _ := r.h.Peerstore().SupportsProtocols(relay, proto.ProtoIDv2Hop); len(ok) == 0 {
			continue
		}
		circ, err := ma.NewMultiaddr("/p2p/" + relay.String() + "/p2p-circuit")
		if err != nil {
			continue
		}
		var addrs []ma.Multiaddr
		for _, c := range r.h.Network().ConnsToPeer(relay) {
			if !c.Stat().Limited {
				addrs = append(addrs, c.RemoteMultiaddr().Encapsulate(circ))
			}
		}
		ClearBackoff(r.h, pi.ID)
		if len(addrs) > 0 && r.h.Connect(dctx, peer.AddrInfo{ID: pi.ID, Addrs: addrs}) == nil {
			return true
		}
	}
	return false
}
