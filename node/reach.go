package node

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/autonat"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/parley-p2p/parley/node/p2p"
)

// Reachability across home routers (docs/protocol.md §9.1): AutoNAT (v1 and
// v2) tells a node whether it is publicly reachable, NAT port mapping
// (UPnP, NAT-PMP) opens a port where the router allows it, a private node
// reserves a slot on a circuit relay v2 of its community (AutoRelay, with
// its bootstrap peers, remembered peers and connected relays as
// candidates) and announces the relay addresses, and DCUtR upgrades a
// relayed connection to a direct one where the NATs allow it.

// Relay service modes (Config.Relay).
const (
	RelayOff   = ""      // serve no circuits
	RelayRooms = "rooms" // serve peers that proved a room this node keeps
	RelayOpen  = "open"  // serve any peer, within the limits
)

// Reachability overrides (Config.Reachability).
const (
	ReachAuto    = ""
	ReachPublic  = "public"
	ReachPrivate = "private"
)

// relayResources are the relay service's limits: each circuit carries at
// most bytes (relayCircuitBytes unless configured) each way for at most two
// minutes, then the relay closes it (gossip and sync resume over another
// circuit or a direct connection); a peer holds one reservation; the relay
// holds at most 128 reservations and 16 circuits per peer.
func relayResources(bytes int64) relayv2.Resources {
	if bytes <= 0 {
		bytes = relayCircuitBytes
	}
	rc := relayv2.DefaultResources()
	rc.Limit = &relayv2.RelayLimit{Duration: 2 * time.Minute, Data: bytes}
	rc.ReservationTTL = 30 * time.Minute
	return rc
}

// relayCircuitBytes is the byte budget of one relayed circuit, each way;
// MinRelayCircuitBytes is the least one may configure (a circuit must
// carry a handshake, identify and a few events).
const (
	relayCircuitBytes    = p2p.RelayCircuitBytes
	MinRelayCircuitBytes = 16 << 10
)

// relayProofWait is how long a reservation request waits for the peer's
// room proof, which runs on the same connection right after it opened.
const relayProofWait = 10 * time.Second

// reach holds the node's reachability state: the host (once built), what
// AutoNAT said, and the relay service. Its fields are guarded by mu.
type reach struct {
	cfg     Config
	replica func() *Replica
	peers   *PeerBook

	mu          sync.Mutex
	h           host.Host
	verdict     network.Reachability // AutoNAT v1; guarded by mu
	reachable   []ma.Multiaddr       // AutoNAT v2 confirmed addresses; guarded by mu
	unreachable []ma.Multiaddr       // AutoNAT v2 addresses found unreachable; guarded by mu
	relay       *relayv2.Relay
	punched     map[peer.ID]time.Time // last hole punch that ran with a peer (either side); guarded by mu
	repunched   map[peer.ID]time.Time // last relayed connection reopened for a punch; guarded by mu
}

// options are the libp2p options for reachability.
func (r *reach) options() []libp2p.Option {
	opts := []libp2p.Option{
		libp2p.EnableHolePunching(holepunch.WithTracer(r)),
		libp2p.EnableAutoNATv2(),
		libp2p.EnableNATService(),
		libp2p.EnableAutoRelayWithPeerSource(r.relayCandidates,
			autorelay.WithMinCandidates(1),
			autorelay.WithNumRelays(2),
			autorelay.WithBootDelay(0),
			autorelay.WithBackoff(30*time.Second),
			autorelay.WithMinInterval(5*time.Second)),
		libp2p.AddrsFactory(r.addrs),
	}
	if !r.cfg.NoPortMap && !loopbackOnly(r.cfg.Listen) {
		opts = append(opts, libp2p.NATPortMap())
	}
	switch r.cfg.Reachability {
	case ReachPublic:
		opts = append(opts, libp2p.ForceReachabilityPublic())
	case ReachPrivate:
		opts = append(opts, libp2p.ForceReachabilityPrivate())
	}
	return opts
}

// autorelayTag is the connection manager tag AutoRelay protects the
// connection to a relay it holds a reservation on with.
const autorelayTag = "autorelay"

// addrs adds circuit addresses through the relays this node holds a
// reservation on when AutoRelay announced none: AutoRelay only announces
// a relay's public addresses, and a community relay may sit on a private
// network (a LAN, a VPN, a carrier-grade NAT). The circuit goes through the
// address this node reached the relay on.
func (r *reach) addrs(addrs []ma.Multiaddr) []ma.Multiaddr {
	r.mu.Lock()
	h, public := r.h, len(r.reachable) > 0 || r.cfg.Reachability == ReachPublic
	r.mu.Unlock()
	if an, ok := h.(autoNATer); ok && an.GetAutoNat() != nil && an.GetAutoNat().Status() == network.ReachabilityPublic {
		public = true
	}
	if public {
		// AutoRelay may have reserved a slot before the verdict
		// (startRelayFinder), and libp2p keeps announcing its circuit
		// addresses until AutoNAT v2 confirms an address, which takes two
		// servers (each asked at most every 2 minutes).
		return slices.DeleteFunc(slices.Clone(addrs), isRelayed)
	}
	if h == nil || slices.ContainsFunc(addrs, isRelayed) {
		return addrs
	}
	out := slices.Clone(addrs)
	for _, p := range h.Network().Peers() {
		if !h.ConnManager().IsProtected(p, autorelayTag) {
			continue
		}
		for _, c := range h.Network().ConnsToPeer(p) {
			if c.Stat().Limited || isRelayed(c.RemoteMultiaddr()) {
				continue
			}
			circ, err := ma.NewMultiaddr("/p2p/" + p.String() + "/p2p-circuit")
			if err == nil {
				out = append(out, c.RemoteMultiaddr().Encapsulate(circ))
			}
		}
	}
	return out
}

// loopbackOnly reports whether every listen address is on loopback (tests,
// or a node that only talks to this machine): no router to map a port on.
func loopbackOnly(listen []string) bool {
	if len(listen) == 0 {
		return false
	}
	for _, s := range listen {
		a, err := ma.NewMultiaddr(s)
		if err != nil || !manet.IsIPLoopback(a) {
			return false
		}
	}
	return true
}

// start begins serving on h: the relay service (when configured) and the
// watch of AutoNAT's verdicts, until ctx is done.
func (r *reach) start(ctx context.Context, h host.Host) error {
	r.mu.Lock()
	r.h = h
	r.mu.Unlock()
	sub, err := h.EventBus().Subscribe([]any{new(event.EvtLocalReachabilityChanged), new(event.EvtHostReachableAddrsChanged)})
	if err != nil {
		return fmt.Errorf("subscribe to reachability: %w", err)
	}
	if r.cfg.Reachability == ReachAuto && !loopbackOnly(r.cfg.Listen) {
		if err := startRelayFinder(h); err != nil {
			sub.Close()
			return err
		}
	}
	if !loopbackOnly(r.cfg.Listen) {
		go r.servePunch(ctx, h)
	}
	if r.cfg.Relay != RelayOff {
		opts := []relayv2.Option{
			relayv2.WithResources(relayResources(r.cfg.RelayBytes)),
			// Hand out every address but link-local ones: a community relay
			// on a LAN or a private network is still a relay.
			relayv2.WithReservationAddressFilter(func(a ma.Multiaddr) bool { ip, err := manet.ToIP(a); return err == nil && !ip.IsLinkLocalUnicast() }),
		}
		if r.cfg.Relay != RelayOpen {
			opts = append(opts, relayv2.WithACL(roomACL{r.gate}))
		}
		svc, err := relayv2.New(h, opts...)
		if err != nil {
			sub.Close()
			return fmt.Errorf("relay service: %w", err)
		}
		r.mu.Lock()
		r.relay = svc
		r.mu.Unlock()
	}
	go func() {
		defer sub.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-sub.Out():
				if !ok {
					return
				}
				r.mu.Lock()
				switch e := ev.(type) {
				case event.EvtLocalReachabilityChanged:
					r.verdict = e.Reachability
				case event.EvtHostReachableAddrsChanged:
					r.reachable = slices.Clone(e.Reachable)
					r.unreachable = slices.Clone(e.Unreachable)
				}
				r.mu.Unlock()
			}
		}
	}()
	return nil
}

// autoNATer is the host's access to AutoNAT v1 (a BasicHost, or a routed
// host around one).
type autoNATer interface{ GetAutoNat() autonat.AutoNAT }

// startRelayFinder starts AutoRelay at once rather than at AutoNAT's first
// verdict (unless the node listens on loopback only: no router between
// it and its peers). AutoRelay looks for relays while the node is private or of
// unknown reachability, but starts only when it hears a reachability
// event, and AutoNAT v1 says nothing until its first verdict: about 20 s
// behind a NAT that drops unasked packets (the dial back times out). So a
// home node would wait that long for a relay address, and the first
// message across two NATs with it (TestNATReachability). Here the node
// says "unknown" on the event bus, as it is at start, unless AutoNAT
// already judged; a public node gives its reservation up at the public
// verdict, seconds later.
func startRelayFinder(h host.Host) error {
	if an, ok := h.(autoNATer); ok && an.GetAutoNat() != nil && an.GetAutoNat().Status() != network.ReachabilityUnknown {
		return nil
	}
	em, err := h.EventBus().Emitter(new(event.EvtLocalReachabilityChanged), eventbus.Stateful)
	if err != nil {
		return fmt.Errorf("reachability emitter: %w", err)
	}
	defer em.Close()
	return em.Emit(event.EvtLocalReachabilityChanged{Reachability: network.ReachabilityUnknown})
}

// Hole punching runs once per relayed connection, from the end that
// received it, and only if both ends were ready when it opened: libp2p
// answers a punch only once its node learned a public address of its own
// (an observed one, polled with a back-off of up to 5 s), and starts one
// only then. Two nodes that met through a relay in their first seconds
// stayed relayed until the circuit ended (2 minutes on a Parley relay,
// longer on others): 1 pair in 20 in TestNATReachability. So, for a peer
// reached only through a relay with no punch since the connection
// opened, the end with the smaller peer ID reopens the relayed
// connection once both are ready, at most every repunchEvery; the other
// end then punches.
const (
	repunchCheck = 5 * time.Second  // how often servePunch looks
	repunchWait  = 10 * time.Second // a punch starts within a second or two of the connection
	repunchEvery = 2 * time.Minute
)

// Trace notes the hole punches that ran (holepunch.EventTracer).
func (r *reach) Trace(evt *holepunch.Event) {
	if evt.Type != holepunch.StartHolePunchEvtT && evt.Type != holepunch.EndHolePunchEvtT {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.punched == nil {
		r.punched = map[peer.ID]time.Time{}
	}
	r.punched[evt.Remote] = time.Now()
}

// servePunch reopens relayed connections no punch ran on, until ctx is
// done.
func (r *reach) servePunch(ctx context.Context, h host.Host) {
	t := time.NewTicker(repunchCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		for _, m := range []map[peer.ID]time.Time{r.punched, r.repunched} {
			maps.DeleteFunc(m, func(p peer.ID, at time.Time) bool {
				return time.Since(at) > 2*repunchEvery && h.Network().Connectedness(p) == network.NotConnected
			})
		}
		r.mu.Unlock()
		for _, p := range h.Network().Peers() {
			if conns := r.repunchable(h, p, time.Now()); conns != nil {
				go r.repunch(ctx, h, p, conns)
			}
		}
	}
}

// repunchable returns p's relayed connections when servePunch should
// reopen them (and notes that it does), else nil.
func (r *reach) repunchable(h host.Host, p peer.ID, now time.Time) []network.Conn {
	if h.ID() > p || !slices.Contains(h.Mux().Protocols(), holepunch.Protocol) {
		return nil
	}
	if ok, _ := h.Peerstore().SupportsProtocols(p, holepunch.Protocol); len(ok) == 0 || !slices.ContainsFunc(h.Peerstore().Addrs(p), isRelayed) {
		return nil
	}
	conns := h.Network().ConnsToPeer(p)
	var newest time.Time
	for _, c := range conns {
		if !c.Stat().Limited {
			return nil
		}
		if o := c.Stat().Opened; o.After(newest) {
			newest = o
		}
	}
	if len(conns) == 0 || now.Sub(newest) < repunchWait {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.punched[p].After(newest) || now.Sub(r.repunched[p]) < repunchEvery {
		return nil
	}
	if r.repunched == nil {
		r.repunched = map[peer.ID]time.Time{}
	}
	r.repunched[p] = now
	return conns
}

// repunch closes p's relayed connections and dials p again through a
// relay: the new connection is inbound at p, which punches.
func (r *reach) repunch(ctx context.Context, h host.Host, p peer.ID, conns []network.Conn) {
	for _, c := range conns {
		c.Close()
	}
	dctx, cancel := context.WithTimeout(network.WithAllowLimitedConn(ctx, "repunch"), 15*time.Second)
	defer cancel()
	p2p.ClearBackoff(h, p)
	h.Connect(dctx, peer.AddrInfo{ID: p}) // on failure, the address book and the peer's own redials reconnect
}

// close stops the relay service.
func (r *reach) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.relay != nil {
		r.relay.Close()
		r.relay = nil
	}
}

func (r *reach) gate() *p2p.RoomGate {
	if rep := r.replica(); rep != nil {
		return rep.Gate()
	}
	return nil
}

// relayCandidates feeds AutoRelay: bootstrap peers, remembered peers, and
// connected peers that speak the relay's hop protocol. AutoRelay connects
// to each and keeps those that serve it a reservation.
func (r *reach) relayCandidates(ctx context.Context, num int) <-chan peer.AddrInfo {
	out := make(chan peer.AddrInfo, num)
	r.mu.Lock()
	h := r.h
	r.mu.Unlock()
	var cands []peer.AddrInfo
	seen := map[peer.ID]bool{}
	add := func(pi peer.AddrInfo) {
		if h != nil && pi.ID == h.ID() || seen[pi.ID] {
			return
		}
		seen[pi.ID] = true
		cands = append(cands, pi)
	}
	for _, s := range r.cfg.Bootstrap {
		if pi, err := peer.AddrInfoFromString(s); err == nil {
			add(*pi)
		}
	}
	if h != nil {
		for _, p := range h.Network().Peers() {
			if ok, _ := h.Peerstore().SupportsProtocols(p, proto.ProtoIDv2Hop); len(ok) > 0 {
				add(peer.AddrInfo{ID: p, Addrs: h.Peerstore().Addrs(p)})
			}
		}
	}
	if r.peers != nil {
		for _, s := range r.peers.List() {
			if pi, err := peer.AddrInfoFromString(s); err == nil {
				add(*pi)
			}
		}
	}
	for _, pi := range cands {
		if len(out) == cap(out) {
			break
		}
		out <- pi
	}
	close(out)
	return out
}

// status is what status says of how the node is reached: the override
// when the operator set one; else public once AutoNAT v1 or v2 found an
// address reachable from outside, private once v1 found the node
// unreachable or v2 found its public addresses unreachable and none
// reachable, and unknown until then (about 20 s behind a NAT that drops
// unasked packets: docs/operators.md, reaching home).
func (r *reach) status() (reachability string, addrs, relays []string, service string) {
	r.mu.Lock()
	h, verdict, reachable, unreachable := r.h, r.verdict, len(r.reachable) > 0, len(r.unreachable) > 0
	r.mu.Unlock()
	if an, ok := h.(autoNATer); ok && an.GetAutoNat() != nil {
		verdict = an.GetAutoNat().Status() // not the event: startRelayFinder's "unknown" may follow a verdict
	}
	switch {
	case r.cfg.Reachability != ReachAuto:
		reachability = r.cfg.Reachability
	case verdict == network.ReachabilityPublic || reachable:
		reachability = "public"
	case verdict == network.ReachabilityPrivate || unreachable:
		reachability = "private"
	default:
		reachability = "unknown"
	}
	service = "off"
	if r.cfg.Relay != RelayOff {
		service = r.cfg.Relay
	}
	addrs, relays = []string{}, []string{}
	if h == nil {
		return
	}
	for _, a := range h.Addrs() {
		addrs = append(addrs, a.String()+"/p2p/"+h.ID().String())
		if rp, ok := relayOf(a); ok && !slices.Contains(relays, rp.String()) {
			relays = append(relays, rp.String())
		}
	}
	return
}

// confirmed is the addresses AutoNAT v2 confirmed reachable.
func (r *reach) confirmed() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, a := range r.reachable {
		out = append(out, a.String())
	}
	return out
}

// relayOf names the relay of a circuit address (…/p2p/RELAY/p2p-circuit).
func relayOf(a ma.Multiaddr) (peer.ID, bool) {
	var last peer.ID
	var ok bool
	for _, c := range a {
		switch c.Code() {
		case ma.P_P2P:
			if id, err := peer.Decode(c.Value()); err == nil {
				last = id
			}
		case ma.P_CIRCUIT:
			ok = last != ""
			return last, ok
		}
	}
	return "", false
}

// isRelayed reports whether a multiaddr goes through a circuit relay.
func isRelayed(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// roomACL lets a relay serve only peers that proved a room it keeps
// (docs/protocol.md §9.1). The proof runs over the peer's direct
// connection to the relay as soon as their pubsub subscriptions meet, so
// a reservation waits a little for it.
type roomACL struct{ gate func() *p2p.RoomGate }

func (a roomACL) AllowReserve(p peer.ID, _ ma.Multiaddr) bool {
	deadline := time.Now().Add(relayProofWait)
	for {
		if g := a.gate(); g != nil && g.ProvedAny(p) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond) // waits on another goroutine's proof; no event to wait on
	}
}

// AllowConnect serves a circuit when either end proved a room: the
// destination holds a reservation (so it proved one), and the source may
// be a newcomer dialling a member to join.
func (a roomACL) AllowConnect(src peer.ID, _ ma.Multiaddr, dest peer.ID) bool {
	g := a.gate()
	return g != nil && (g.ProvedAny(src) || g.ProvedAny(dest))
}
