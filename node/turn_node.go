package node

import (
	"context"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/p2p"
)

// callNet is what a node runs for calls to get through NATs: its STUN
// socket, answered by stun or, with --turn, by relay, and the
// credentials protocol (turn.go). Set up by registerCallNet, run by
// serveCallNet.
type callNet struct {
	addr    *net.UDPAddr // the STUN socket; nil when STUN is off
	stun    *stunServer  // without --turn
	relay   *turnRelay   // with --turn
	svc     *turnService
	self    func() net.IP // this node's address for its own STUN entry
	turnIP  string        // the relay host an operator named (TURNConfig.IP)
	metrics *prometheus.CounterVec
}

// checkCallNet checks the STUN and TURN settings of cfg.
func checkCallNet(cfg Config) error {
	if cfg.TURN.On && cfg.NoSTUN {
		return errorf(api.KindInvalid, "a TURN relay answers on the STUN port: --turn and --no-stun do not go together")
	}
	_, err := cfg.TURN.relayOptions(net.IPv4zero, nil)
	return err
}

// registerCallNet opens the STUN socket, starts the relay with --turn,
// serves TURNProtocol and binds call.ice_servers.
func (n *Node) registerCallNet(h host.Host) error {
	c := &callNet{self: func() net.IP { return announceIP(h) }, turnIP: n.cfg.TURN.IP}
	if !n.cfg.NoSTUN {
		conn, err := listenSTUN(n.cfg.STUN, stunBindIP(h))
		if err != nil {
			return err
		}
		c.addr = conn.LocalAddr().(*net.UDPAddr)
		if !c.addr.IP.IsUnspecified() {
			c.self = func() net.IP { return c.addr.IP }
		}
		if n.cfg.TURN.On {
			o, err := n.cfg.TURN.relayOptions(c.addr.IP, c.self)
			if err != nil {
				conn.Close()
				return err
			}
			if c.relay, err = newTURNRelay(conn, o); err != nil {
				return err
			}
		} else {
			c.stun = newSTUNServer(conn)
		}
	}
	c.svc = newTURNService(h, n.replica.Gate, n.ident, n.engine.callMember, c.offer)
	c.register(n.metrics)
	n.callNet = c
	n.banner.STUN, n.banner.TURN = c.stunAddr(), c.relay != nil
	Handle(n.api, api.EpCallICEServers, n.iceServers)
	return nil
}

// iceServers answers call.ice_servers; the daemon's own call peer asks it
// too.
func (n *Node) iceServers(ctx context.Context, req api.CallICEServersReq) (api.CallICEServersResp, error) {
	return n.callNet.iceServers(ctx, n.host, n.engine, req)
}

// serveCallNet answers STUN (and TURN) until ctx is done.
func (n *Node) serveCallNet(ctx context.Context) error {
	switch c := n.callNet; {
	case c == nil:
	case c.relay != nil:
		return c.relay.Serve(ctx)
	case c.stun != nil:
		return c.stun.Serve(ctx)
	}
	return nil
}

// stunAddr is the STUN socket's address, "" when STUN is off.
func (c *callNet) stunAddr() string {
	if c.addr == nil {
		return ""
	}
	return c.addr.String()
}

// offer is what a member gets over TURNProtocol.
func (c *callNet) offer(p peer.ID) *turnResp {
	r := &turnResp{}
	if c.addr != nil {
		r.STUN = uint16(c.addr.Port)
	}
	if c.relay != nil {
		user, pass, exp := c.relay.credentials(p)
		r.TURN, r.Host, r.User, r.Pass, r.Expires = r.STUN, c.turnIP, user, pass, exp.Unix()
	}
	return r
}

// register adds the relay's gauges and counters to m.
func (c *callNet) register(m *Metrics) {
	if m == nil {
		return
	}
	relayed := func(f func(r *turnRelay) int64) func() float64 {
		return func() float64 {
			if c.relay == nil {
				return 0
			}
			return float64(f(c.relay))
		}
	}
	c.metrics = counterVec("parley_turn_credentials_total", "Requests for TURN credentials answered (/parley/turn/1.0.0), by result: issued or refused.",
		"result", "issued", "refused")
	m.reg.MustRegister(c.metrics,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "parley_turn_allocations", Help: "Live allocations on this node's TURN relay."},
			relayed(func(r *turnRelay) int64 { return r.allocs.Load() })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "parley_turn_relayed_bytes_total", Help: "Bytes relayed by this node's TURN relay, both directions."},
			relayed(func(r *turnRelay) int64 { return r.relayed.Load() })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "parley_turn_dropped_datagrams_total", Help: "Datagrams the TURN relay dropped over a bandwidth bound."},
			relayed(func(r *turnRelay) int64 { return r.dropped.Load() })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "parley_turn_auth_refused_total", Help: "TURN requests refused: an expired or malformed credential, or an allocation bound reached."},
			relayed(func(r *turnRelay) int64 { return r.refused.Load() })),
	)
	c.svc.issued = func(ok bool) {
		if ok {
			c.metrics.WithLabelValues("issued").Inc()
		} else {
			c.metrics.WithLabelValues("refused").Inc()
		}
	}
}

// iceServers answers call.ice_servers: this node's STUN, then the STUN
// and TURN servers of the connected members of the room, asked over
// TURNProtocol (at most turnFetchWait each, all at once).
func (c *callNet) iceServers(ctx context.Context, h host.Host, e *Engine, req api.CallICEServersReq) (api.CallICEServersResp, error) {
	room, err := e.joinedRoom(ctx, req.Room)
	if err != nil {
		return api.CallICEServersResp{}, err
	}
	var stuns []string
	if c.addr != nil {
		stuns = append(stuns, "stun:"+net.JoinHostPort(c.self().String(), strconv.Itoa(c.addr.Port)))
	}
	type answer struct {
		p    peer.ID
		host string
		r    *turnResp
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		answers []answer
	)
	for _, p := range c.members(h, room) {
		host := remoteIPv4(h, p)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, turnFetchWait)
			defer cancel()
			r, err := c.svc.fetch(ctx, p, room)
			if err != nil {
				return
			}
			if r.Host != "" {
				host = r.Host
			}
			if host == "" {
				return
			}
			mu.Lock()
			answers = append(answers, answer{p, host, r})
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.SortFunc(answers, func(a, b answer) int { return strings.Compare(string(a.p), string(b.p)) })
	var turns []api.ICEServer
	for _, a := range answers {
		if a.r.STUN != 0 {
			stuns = append(stuns, "stun:"+net.JoinHostPort(a.host, strconv.Itoa(int(a.r.STUN))))
		}
		if a.r.TURN != 0 {
			turns = append(turns, api.ICEServer{
				URLs:     []string{"turn:" + net.JoinHostPort(a.host, strconv.Itoa(int(a.r.TURN))) + "?transport=udp"},
				Username: a.r.User, Credential: a.r.Pass,
			})
		}
	}
	out := api.CallICEServersResp{ICEServers: []api.ICEServer{}}
	if stuns = slices.Compact(stuns); len(stuns) > 0 {
		out.ICEServers = append(out.ICEServers, api.ICEServer{URLs: stuns})
	}
	out.ICEServers = append(out.ICEServers, turns...)
	return out, nil
}

// members lists the connected peers that proved room.
func (c *callNet) members(h host.Host, room crdt.RoomID) []peer.ID {
	g := c.svc.gate()
	if g == nil {
		return nil
	}
	var out []peer.ID
	for _, p := range g.ProvedPeers(p2p.RefOf(room)) {
		if p != h.ID() && len(h.Network().ConnsToPeer(p)) > 0 {
			out = append(out, p)
		}
	}
	return out
}

// remoteIPv4 is the IPv4 address this node reaches p at over a direct
// connection, "" when it has none.
func remoteIPv4(h host.Host, p peer.ID) string {
	for _, conn := range h.Network().ConnsToPeer(p) {
		ra := conn.RemoteMultiaddr()
		if isRelayed(ra) {
			continue
		}
		if ip, err := manet.ToIP(ra); err == nil && ip.To4() != nil {
			return ip.String()
		}
	}
	return ""
}

// stunBindIP is where the STUN socket listens by default: every interface
// when libp2p listens on every IPv4 interface, else its first IPv4
// address (loopback for a loopback-only node).
func stunBindIP(h host.Host) net.IP {
	var first net.IP
	for _, a := range h.Network().ListenAddresses() {
		ip, err := manet.ToIP(a)
		if err != nil || ip.To4() == nil {
			continue
		}
		if ip.IsUnspecified() {
			return net.IPv4zero
		}
		if first == nil {
			first = ip
		}
	}
	if first == nil {
		return net.IPv4zero
	}
	return first
}

// announceIP is this node's IPv4 address as others best reach it: the
// first public one among its addresses (listen or observed), else the
// first that is not loopback, else loopback.
func announceIP(h host.Host) net.IP {
	var private net.IP
	for _, a := range h.Addrs() {
		if isRelayed(a) {
			continue
		}
		ip, err := manet.ToIP(a)
		if err != nil || ip.To4() == nil || ip.IsUnspecified() {
			continue
		}
		if manet.IsPublicAddr(a) {
			return ip
		}
		if private == nil && !ip.IsLoopback() {
			private = ip
		}
	}
	if private != nil {
		return private
	}
	return net.IPv4(127, 0, 0, 1)
}
