package p2p

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	lprecord "github.com/libp2p/go-libp2p/core/record"
	"github.com/libp2p/go-msgio"
	"golang.org/x/time/rate"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/wire"
)

// Members share where the other members are (docs/protocol.md §9.2): a
// node asks each room peer it is connected to, every peerRecordsEvery, for
// the signed peer records (libp2p routing records, RFC 0003: an envelope
// signed by the peer's own key, with a sequence number, listing its
// addresses) of the other peers of the rooms both proved to it. Identify
// gave the answering node those records over its connections. A record is
// checked against its signer's key and is newer than what the peerstore
// holds, or it is dropped, so no member can misdirect others to addresses
// a peer did not sign; the asker dials the peers it is not connected to.
// So a member that moved (a new address, a new relay) and reached any one
// member is found by the others.

// PeerRecordsProtocol answers a room peer with the records of the other
// peers of the rooms it proved.
const PeerRecordsProtocol = protocol.ID("/parley/peer-records/1.0.0")

const (
	maxPeerRecords      = 32        // records in one answer
	maxPeerRecordBytes  = 4 << 10   // one marshalled envelope
	maxPeerRecordsFrame = 140 << 10 // an answer: 32 records and their envelope
	peerRecordsEvery    = 15 * time.Second
)

// peerRecordsMsg is the one frame of an answer; the asker sends nothing.
type peerRecordsMsg struct {
	Records [][]byte `cbor:"records"`
}

// errPeerRecords: an answer that breaks the protocol's bounds.
var errPeerRecords = errors.New("node: bad peer records")

// decodePeerRecords parses an answer and checks each record's signature:
// it returns the records that verify, signed by a peer other than from.
func decodePeerRecords(b []byte, from peer.ID) ([]*lprecord.Envelope, error) {
	var m peerRecordsMsg
	if err := crdt.UnmarshalCanonical(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %v", errPeerRecords, err)
	}
	if len(m.Records) > maxPeerRecords {
		return nil, fmt.Errorf("%w: %d records", errPeerRecords, len(m.Records))
	}
	var out []*lprecord.Envelope
	for _, raw := range m.Records {
		if len(raw) > maxPeerRecordBytes {
			continue
		}
		env, rec, err := lprecord.ConsumeEnvelope(raw, peer.PeerRecordEnvelopeDomain)
		if err != nil {
			continue
		}
		pr, ok := rec.(*peer.PeerRecord)
		if !ok || pr.PeerID == from {
			continue
		}
		out = append(out, env)
	}
	return out, nil
}

// roomPeersOf lists the connected peers, other than p, that proved a room
// p proved too.
func (g *RoomGate) roomPeersOf(p peer.ID) []peer.ID {
	g.mu.Lock()
	defer g.mu.Unlock()
	gp := g.peers[p]
	if gp == nil {
		return nil
	}
	var out []peer.ID
	for q, gq := range g.peers {
		if q == p {
			continue
		}
		for ref, ok := range gp.theirs {
			if _, kept := g.rooms[ref]; ok && kept && gq.theirs[ref] {
				out = append(out, q)
				break
			}
		}
	}
	return out
}

// peerRecords answers and asks for peer records.
type peerRecords struct {
	h     host.Host
	gate  func() *RoomGate
	log   *slog.Logger
	asks  *wire.LimiterSet[peer.ID] // answers per asking peer
	asked map[peer.ID]time.Time
}

// ServePeerRecords answers room peers and asks them, until ctx is done.
func ServePeerRecords(ctx context.Context, h host.Host, gate func() *RoomGate, log *slog.Logger) error {
	pr := &peerRecords{h: h, gate: gate, log: log, asks: wire.NewLimiterSet[peer.ID](rate.Every(peerRecordsEvery/4), 4), asked: map[peer.ID]time.Time{}}
	// Identify hands over each peer's signed record but does not keep it:
	// keep the latest in the certified address book.
	sub, err := h.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		return fmt.Errorf("subscribe to identify: %w", err)
	}
	defer sub.Close()
	cab, _ := peerstore.GetCertifiedAddrBook(h.Peerstore())
	h.SetStreamHandler(PeerRecordsProtocol, pr.handle)
	defer h.RemoveStreamHandler(PeerRecordsProtocol)
	t := time.NewTicker(peerRecordsEvery / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-sub.Out():
			if e, ok := ev.(event.EvtPeerIdentificationCompleted); ok && e.SignedPeerRecord != nil && cab != nil {
				cab.ConsumePeerRecord(e.SignedPeerRecord, peerstore.RecentlyConnectedAddrTTL) // identify checked it is e.Peer's
			}
		case <-t.C:
			pr.round(ctx)
		}
	}
}

// round asks each connected room peer not asked for peerRecordsEvery.
func (pr *peerRecords) round(ctx context.Context) {
	g := pr.gate()
	if g == nil {
		return
	}
	now := time.Now()
	for p, at := range pr.asked {
		if now.Sub(at) > 2*peerRecordsEvery {
			delete(pr.asked, p)
		}
	}
	for _, p := range pr.h.Network().Peers() {
		if !g.ProvedAny(p) || now.Sub(pr.asked[p]) < peerRecordsEvery {
			continue
		}
		pr.asked[p] = now
		if err := pr.ask(ctx, p); err != nil {
			pr.log.Debug("peer records", "peer", p, "err", err)
		}
	}
}

// ask fetches p's records of room peers, keeps those newer than the
// peerstore's, and dials the peers this node is not connected to.
func (pr *peerRecords) ask(ctx context.Context, p peer.ID) error {
	ctx, cancel := context.WithTimeout(network.WithAllowLimitedConn(ctx, "peer-records"), 10*time.Second)
	defer cancel()
	st, err := pr.h.NewStream(ctx, p, PeerRecordsProtocol)
	if err != nil {
		return err
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(10 * time.Second))
	st.CloseWrite()
	r := wire.NewFrameReader(st)
	b, err := r.Next(maxPeerRecordsFrame)
	if err != nil {
		return err
	}
	envs, err := decodePeerRecords(b, p)
	r.Shrink()
	if err != nil {
		st.Reset()
		return err
	}
	cab, ok := peerstore.GetCertifiedAddrBook(pr.h.Peerstore())
	if !ok {
		return nil
	}
	for _, env := range envs {
		rec, err := env.Record()
		if err != nil {
			continue
		}
		rp := rec.(*peer.PeerRecord) // decodePeerRecords checked the type
		if rp.PeerID == pr.h.ID() {
			continue
		}
		if accepted, err := cab.ConsumePeerRecord(env, peerstore.RecentlyConnectedAddrTTL); err != nil || !accepted {
			continue
		}
		if pr.h.Network().Connectedness(rp.PeerID) != network.NotConnected {
			continue
		}
		go func(pi peer.AddrInfo) {
			dctx, cancel := context.WithTimeout(network.WithAllowLimitedConn(context.WithoutCancel(ctx), "peer-records"), 15*time.Second)
			defer cancel()
			ClearBackoff(pr.h, pi.ID)
			if err := pr.h.Connect(dctx, pi); err != nil {
				pr.log.Debug("dial a room peer from its record", "peer", pi.ID, "err", err)
			}
		}(peer.AddrInfo{ID: rp.PeerID, Addrs: rp.Addrs})
	}
	return nil
}

// handle answers a peer with the records of the other connected peers of
// the rooms it proved: nothing for a peer that proved no room.
func (pr *peerRecords) handle(st network.Stream) {
	defer st.Close()
	st.SetDeadline(time.Now().Add(10 * time.Second))
	p := st.Conn().RemotePeer()
	var m peerRecordsMsg
	g := pr.gate()
	cab, ok := peerstore.GetCertifiedAddrBook(pr.h.Peerstore())
	if g != nil && ok && pr.asks.Allow(p) {
		for _, q := range g.roomPeersOf(p) {
			if len(m.Records) == maxPeerRecords {
				break
			}
			env := cab.GetPeerRecord(q)
			if env == nil {
				continue
			}
			if b, err := env.Marshal(); err == nil && len(b) <= maxPeerRecordBytes {
				m.Records = append(m.Records, b)
			}
		}
	}
	if m.Records == nil {
		m.Records = [][]byte{}
	}
	b, err := crdt.Marshal(m)
	if err != nil {
		st.Reset()
		return
	}
	if err := msgio.NewVarintWriter(st).WriteMsg(b); err != nil {
		st.Reset()
	}
}
