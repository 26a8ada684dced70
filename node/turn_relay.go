package node

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/pion/logging"
	"github.com/pion/turn/v4"
	"golang.org/x/time/rate"

	"github.com/parley-p2p/parley/api"
)

// The TURN relay of a node started with --turn (docs/protocol.md 9.3). It
// runs pion's TURN server on the node's STUN socket with TURN REST
// credentials: the user name is "EXPIRY:PEER" (EXPIRY in Unix seconds,
// PEER the libp2p peer ID of the member it was issued to), the password
// base64(HMAC-SHA1(secret, user name)) under a secret drawn at start and
// never written anywhere. Credentials are handed out only over
// TURNProtocol, to members (turn.go). An expired credential opens no new
// allocation; the allocation it opened may go on refreshing itself until
// it is turnMaxAge old, so that a call outlives its credential but not the
// bound. Bandwidth is bounded per allocation and for the whole relay (a
// datagram over either bound is dropped, as a congested link would), and
// so are the number of allocations, on the whole and per peer.

// Defaults of the relay's bounds.
const (
	DefaultTURNAllocKbps = 6000  // one allocation, both directions together
	DefaultTURNTotalKbps = 50000 // every allocation together
	turnMaxAllocs        = 128
	turnMaxPerPeer       = 16
	turnCredTTL          = 10 * time.Minute // a credential opens allocations this long
	turnMaxAge           = 12 * time.Hour   // no allocation lives longer
	turnRealm            = "parley"
	turnMinBurst         = 16 << 10 // bytes: a bucket holds at least this (several datagrams)
)

// TURNConfig is how a node runs its TURN relay (--turn).
type TURNConfig struct {
	On bool
	// IP is the relay address the relay announces in its allocations; by
	// default the STUN socket's own address, or, when that listens on every
	// interface, the node's first public IPv4 address as peers see it.
	IP string
	// Ports is the range relayed ports are taken from, "MIN-MAX"; by
	// default any free port.
	Ports string
	// AllocKbps and TotalKbps bound the relayed traffic in kbit/s, per
	// allocation (both directions together) and on the whole; 0 is the
	// default.
	AllocKbps, TotalKbps int
}

// turnRelayOptions are the relay's settings, resolved from a TURNConfig.
type turnRelayOptions struct {
	allocRate, totalRate  int // bytes per second
	maxAllocs, maxPerPeer int
	ttl, maxAge           time.Duration
	bindIP                net.IP        // where relayed sockets listen
	announce              func() net.IP // the relay address announced
	portMin, portMax      int           // 0, 0: any free port
}

// relayOptions resolves c; announce is used when c names no IP.
func (c TURNConfig) relayOptions(bindIP net.IP, announce func() net.IP) (turnRelayOptions, error) {
	o := turnRelayOptions{
		allocRate: kbps(c.AllocKbps, DefaultTURNAllocKbps), totalRate: kbps(c.TotalKbps, DefaultTURNTotalKbps),
		maxAllocs: turnMaxAllocs, maxPerPeer: turnMaxPerPeer, ttl: turnCredTTL, maxAge: turnMaxAge,
		bindIP: bindIP, announce: announce,
	}
	if c.AllocKbps < 0 || c.TotalKbps < 0 {
		return o, errorf(api.KindInvalid, "turn bandwidth: want a positive number of kbit/s")
	}
	if c.IP != "" {
		ip := net.ParseIP(c.IP).To4()
		if ip == nil || ip.IsUnspecified() {
			return o, errorf(api.KindInvalid, "turn address %q: want an IPv4 address", c.IP)
		}
		o.announce = func() net.IP { return ip }
	} else if !bindIP.IsUnspecified() {
		o.announce = func() net.IP { return bindIP }
	}
	if c.Ports != "" {
		lo, hi, ok := strings.Cut(c.Ports, "-")
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if !ok || err1 != nil || err2 != nil || a < 1024 || b > 65535 || a > b {
			return o, errorf(api.KindInvalid, "turn ports %q: want MIN-MAX within 1024-65535", c.Ports)
		}
		o.portMin, o.portMax = a, b
	}
	return o, nil
}

func kbps(v, def int) int {
	if v == 0 {
		v = def
	}
	return v * 1000 / 8
}

// turnRelay is the running relay: pion's server, the secret, the bounds
// and the live allocations. Its maps are guarded by mu; pion calls auth and
// then AllocatePacketConn for one request on its one read goroutine, and
// pending carries who authenticated from the first to the second.
type turnRelay struct {
	o      turnRelayOptions
	secret []byte
	srv    *turn.Server
	total  *rate.Limiter

	mu      sync.Mutex
	pending turnOwner               // guarded by mu
	bySrc   map[string]*relayConn   // live allocations by client address; guarded by mu
	perPeer map[peer.ID]int         // live allocations per peer; guarded by mu
	all     map[*relayConn]struct{} // guarded by mu

	allocs, relayed, dropped, refused atomic.Int64
}

// turnOwner is who authenticated an allocation.
type turnOwner struct {
	user string
	peer peer.ID
	src  string
}

// newTURNRelay starts pion's TURN server on conn (which it then owns).
func newTURNRelay(conn net.PacketConn, o turnRelayOptions) (*turnRelay, error) {
	r := &turnRelay{o: o, secret: make([]byte, 32), bySrc: map[string]*relayConn{}, perPeer: map[peer.ID]int{}, all: map[*relayConn]struct{}{}}
	rand.Read(r.secret)
	r.total = rate.NewLimiter(rate.Limit(o.totalRate), max(o.totalRate, turnMinBurst))
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm:         turnRealm,
		AuthHandler:   r.auth,
		LoggerFactory: &logging.DefaultLoggerFactory{Writer: io.Discard, DefaultLogLevel: logging.LogLevelDisabled, ScopeLevels: map[string]logging.LogLevel{}},
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn:            conn,
			RelayAddressGenerator: r,
			PermissionHandler:     r.permit,
		}},
	})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("turn relay: %w", err)
	}
	r.srv = srv
	return r, nil
}

// Serve runs until ctx is done, then closes the server, its socket and
// every allocation.
func (r *turnRelay) Serve(ctx context.Context) error {
	<-ctx.Done()
	err := r.srv.Close()
	r.mu.Lock()
	live := make([]*relayConn, 0, len(r.all))
	for c := range r.all {
		live = append(live, c)
	}
	r.mu.Unlock()
	for _, c := range live {
		c.Close()
	}
	return err
}

// credentials issues a credential to p, valid for the relay's TTL.
func (r *turnRelay) credentials(p peer.ID) (user, pass string, expires time.Time) {
	return r.credentialsUntil(p, time.Now().Add(r.o.ttl))
}

func (r *turnRelay) credentialsUntil(p peer.ID, exp time.Time) (user, pass string, expires time.Time) {
	user = strconv.FormatInt(exp.Unix(), 10) + ":" + p.String()
	return user, r.password(user), exp
}

func (r *turnRelay) password(user string) string {
	m := hmac.New(sha1.New, r.secret)
	m.Write([]byte(user))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// parseTURNUser splits a relay user name into its expiry and peer.
func parseTURNUser(user string) (time.Time, peer.ID, bool) {
	exp, id, ok := strings.Cut(user, ":")
	if !ok {
		return time.Time{}, "", false
	}
	t, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || t <= 0 {
		return time.Time{}, "", false
	}
	p, err := peer.Decode(id)
	if err != nil {
		return time.Time{}, "", false
	}
	return time.Unix(t, 0), p, true
}

// auth is pion's AuthHandler: the key for a well-formed user name that is
// unexpired (and whose peer has room for another allocation), or that
// refreshes the allocation it opened from src.
func (r *turnRelay) auth(user, realm string, src net.Addr) ([]byte, bool) {
	exp, p, ok := parseTURNUser(user)
	if !ok {
		r.refused.Add(1)
		return nil, false
	}
	key := turn.GenerateAuthKey(user, realm, r.password(user))
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.bySrc[src.String()]; c != nil && c.owner.user == user && time.Since(c.born) < r.o.maxAge {
		return key, true // the allocation's own client: refresh, permission, channel
	}
	if time.Now().After(exp) || r.perPeer[p] >= r.o.maxPerPeer || len(r.all) >= r.o.maxAllocs {
		r.refused.Add(1)
		return nil, false
	}
	r.pending = turnOwner{user: user, peer: p, src: src.String()}
	return key, true
}

// permit is pion's PermissionHandler: a relay with a public address
// relays to public addresses only, so that members cannot reach the
// relay's own LAN or loopback through it; a relay on a private or
// loopback address (a LAN, a test) relays within that scope too.
func (r *turnRelay) permit(_ net.Addr, ip net.IP) bool {
	if ip.IsUnspecified() || ip.IsMulticast() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() {
		return false
	}
	self := r.o.announce()
	switch {
	case ip.IsLoopback():
		return self.IsLoopback()
	case ip.IsPrivate():
		return self.IsLoopback() || self.IsPrivate()
	}
	return true
}

// Validate is part of turn.RelayAddressGenerator.
func (r *turnRelay) Validate() error { return nil }

// AllocateConn is part of turn.RelayAddressGenerator: TCP relaying is not
// offered.
func (r *turnRelay) AllocateConn(string, int) (net.Conn, net.Addr, error) {
	return nil, nil, errors.New("node: turn relays UDP only")
}

// AllocatePacketConn is part of turn.RelayAddressGenerator: it opens the
// relayed socket of the allocation the last auth admitted.
func (r *turnRelay) AllocatePacketConn(network string, _ int) (net.PacketConn, net.Addr, error) {
	r.mu.Lock()
	owner := r.pending
	r.pending = turnOwner{}
	full := owner.user == "" || r.perPeer[owner.peer] >= r.o.maxPerPeer || len(r.all) >= r.o.maxAllocs
	r.mu.Unlock()
	if full {
		return nil, nil, errors.New("node: turn allocation refused")
	}
	conn, err := r.listenRelay(network)
	if err != nil {
		return nil, nil, err
	}
	c := &relayConn{PacketConn: conn, r: r, owner: owner, born: time.Now(),
		lim: rate.NewLimiter(rate.Limit(r.o.allocRate), max(r.o.allocRate, turnMinBurst))}
	r.allocs.Add(1)
	r.mu.Lock()
	r.bySrc[owner.src] = c
	r.perPeer[owner.peer]++
	r.all[c] = struct{}{}
	c.timer = time.AfterFunc(r.o.maxAge, func() { c.Close() })
	r.mu.Unlock()
	port := conn.LocalAddr().(*net.UDPAddr).Port
	return c, &net.UDPAddr{IP: r.o.announce(), Port: port}, nil
}

// listenRelay opens a relayed socket, in the port range when one is set.
func (r *turnRelay) listenRelay(network string) (net.PacketConn, error) {
	if r.o.portMin == 0 {
		return net.ListenPacket(network, net.JoinHostPort(r.o.bindIP.String(), "0"))
	}
	var err error
	for range 32 {
		port := r.o.portMin + mrand.IntN(r.o.portMax-r.o.portMin+1)
		var conn net.PacketConn
		if conn, err = net.ListenPacket(network, net.JoinHostPort(r.o.bindIP.String(), strconv.Itoa(port))); err == nil {
			return conn, nil
		}
	}
	return nil, fmt.Errorf("node: no free relay port in %d-%d: %w", r.o.portMin, r.o.portMax, err)
}

// relayConn is one allocation's relayed socket: it counts and bounds what
// crosses it, and unregisters itself when closed (by pion when the
// allocation ends, or at the age bound).
type relayConn struct {
	net.PacketConn
	r     *turnRelay
	owner turnOwner
	born  time.Time
	lim   *rate.Limiter
	timer *time.Timer // guarded by r.mu
	once  sync.Once
}

// admit takes n bytes from the allocation's and the relay's buckets.
func (c *relayConn) admit(n int) bool {
	now := time.Now()
	if !c.lim.AllowN(now, n) || !c.r.total.AllowN(now, n) {
		c.r.dropped.Add(1)
		return false
	}
	c.r.relayed.Add(int64(n))
	return true
}

// WriteTo relays a datagram from the client to a peer, or drops it.
func (c *relayConn) WriteTo(b []byte, to net.Addr) (int, error) {
	if !c.admit(len(b)) {
		return len(b), nil
	}
	return c.PacketConn.WriteTo(b, to)
}

// ReadFrom returns the next datagram from a peer that the bounds admit.
func (c *relayConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, from, err := c.PacketConn.ReadFrom(b)
		if err != nil || c.admit(n) {
			return n, from, err
		}
	}
}

func (c *relayConn) Close() error {
	err := net.ErrClosed
	c.once.Do(func() {
		err = c.PacketConn.Close()
		r := c.r
		r.mu.Lock()
		c.timer.Stop()
		if r.bySrc[c.owner.src] == c {
			delete(r.bySrc, c.owner.src)
		}
		if r.perPeer[c.owner.peer]--; r.perPeer[c.owner.peer] <= 0 {
			delete(r.perPeer, c.owner.peer)
		}
		delete(r.all, c)
		r.mu.Unlock()
		r.allocs.Add(-1)
	})
	return err
}
