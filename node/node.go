package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/crdt/badgerstore"
	"github.com/parley-p2p/parley/node/mediasvc"
	"github.com/parley-p2p/parley/node/p2p"
	"github.com/parley-p2p/parley/rooms/e2ee"
)

// Banner is what a daemon prints once it is ready.
type Banner struct {
	PeerID string
	Addrs  []string
	API    string
	// How far the node reaches: it listens on every interface (not only
	// loopback or named addresses), finds LAN peers by mDNS, takes part in
	// the DHT.
	AllInterfaces, MDNS, DHT bool
	// Metrics is the address of the separate metrics listener ("" when
	// none); MetricsExposed says it is not a loopback address.
	Metrics        string
	MetricsExposed bool
	// STUN is the UDP address that answers STUN ("" when off); TURN says
	// a TURN relay answers there too (node/turn_node.go).
	STUN string
	TURN bool
}

// Node is a running Parley daemon: it composes the store, the libp2p host,
// the engine, gossip, sync, the peer book and the API. Each component runs
// its own Serve loop; Node only starts them and stops them.
type Node struct {
	cfg      Config
	log      *slog.Logger
	ident    *crdt.Identity
	kem      *e2ee.KEMSecretKey
	store    *badgerstore.Store
	host     host.Host
	engine   *Engine
	replica  *Replica
	media    *mediasvc.Service // set by registerMedia
	mediaErr error
	api      *APIServer
	peers    *PeerBook
	token    string
	metrics  *Metrics
	metricsL *MetricsServer // the --metrics listener, nil without it
	trace    *os.File       // the --gossip-trace file, nil without it
	bw       *metrics.BandwidthCounter
	reach    *reach
	replicaP atomic.Pointer[Replica]        // replica, for the relay's ACL
	rdv      atomic.Pointer[p2p.Rendezvous] // set when the DHT runs
	callNet  *callNet                       // STUN, TURN (turn_node.go)

	callPeers *callPeers    // the daemon's own call peers (calls_peer.go), set by registerCalls
	progress  progressTable // running operations a client follows (progress.go)

	importStep func(k int) // test hook: runs after step k of a chat import, before the next (import.go)

	ready  chan struct{}
	banner Banner

	closeOnce sync.Once
	closeErr  error
	unlock    func() // releases the home's daemon lock
}

// Open prepares a node (initializing the home if it is empty) without
// starting anything that runs in the background.
func Open(cfg Config) (*Node, error) {
	if cfg.Home == "" {
		cfg.Home = api.DefaultHome()
	}
	if cfg.API == "" {
		cfg.API = DefaultAPI
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := os.MkdirAll(cfg.Home, 0o700); err != nil {
		return nil, fmt.Errorf("create home: %w", err)
	}
	unlock, err := lockHome(cfg.Home)
	if err != nil {
		return nil, err
	}
	n, err := open(cfg, log)
	if err != nil {
		unlock()
		return nil, err
	}
	n.unlock = unlock
	return n, nil
}

// open is Open once the home's lock is held.
func open(cfg Config, log *slog.Logger) (*Node, error) {
	ident, kem, _, err := loadOrCreateKeys(cfg.Home)
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: log, ident: ident, kem: kem, ready: make(chan struct{})}
	switch cfg.Relay {
	case RelayOff, RelayRooms, RelayOpen:
	default:
		return nil, errorf(api.KindInvalid, "relay mode %q (want %q or %q)", cfg.Relay, RelayRooms, RelayOpen)
	}
	switch cfg.Reachability {
	case ReachAuto, ReachPublic, ReachPrivate:
	default:
		return nil, errorf(api.KindInvalid, "reachability %q (want %q or %q)", cfg.Reachability, ReachPublic, ReachPrivate)
	}
	if err := checkCallNet(cfg); err != nil {
		return nil, err
	}
	if n.store, err = badgerstore.Open(filepath.Join(cfg.Home, storeDir), badgerstore.Options{}); err != nil {
		if strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return nil, daemonRuns(cfg.Home) // a daemon without the lock file (lock_other.go)
		}
		return nil, fmt.Errorf("open store: %w", err)
	}
	if n.peers, err = LoadPeerBook(filepath.Join(cfg.Home, peersFile)); err != nil {
		n.store.Close()
		return nil, err
	}
	n.reach = &reach{cfg: cfg, peers: n.peers, replica: func() *Replica { return n.replicaP.Load() }}
	tok := make([]byte, 32)
	rand.Read(tok)
	n.token = hex.EncodeToString(tok)
	if n.api, err = NewAPIServer(cfg.API, n.token, log); err != nil {
		n.store.Close()
		return nil, err
	}
	n.metrics, n.bw = NewMetrics(), metrics.NewBandwidthCounter()
	n.api.SetMetrics(n.metrics)
	if cfg.GossipTrace != "" {
		if n.trace, err = os.OpenFile(cfg.GossipTrace, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
			n.api.ln.Close()
			n.store.Close()
			return nil, fmt.Errorf("gossip trace: %w", err)
		}
	}
	if cfg.Metrics != "" {
		if n.metricsL, err = NewMetricsServer(cfg.Metrics, n.metrics); err != nil {
			if n.trace != nil {
				n.trace.Close()
			}
			n.api.ln.Close()
			n.store.Close()
			return nil, err
		}
	}
	n.api.SetWebDir(filepath.Join(cfg.Home, webDir))
	n.api.SetWebSessions(filepath.Join(cfg.Home, webSessionsFile))
	return n, nil
}

// Ready is closed once the node listens and its api file is written.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// Banner describes the running node; valid after Ready.
func (n *Node) Banner() Banner { return n.banner }

// Close releases what Open acquired; Serve calls it on return.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.closeErr = n.store.Close()
		if n.metricsL != nil {
			n.metricsL.Close() // already closed if it served
		}
		n.metrics.path.close()
		if n.trace != nil {
			n.trace.Close() // again, if the path had it
		}
		n.unlock()
	})
	return n.closeErr
}

func (n *Node) newHost() (host.Host, error) {
	sk, err := crypto.UnmarshalEd25519PrivateKey(append(n.ident.Device.Seed(), pubBytes(n.ident.Device.Public())...))
	if err != nil {
		return nil, fmt.Errorf("device key as peer key: %w", err)
	}
	listen := n.cfg.Listen
	newHost := func(listen []string) (host.Host, error) {
		opts, err := hostOptions()
		if err != nil {
			return nil, err
		}
		opts = append(opts, n.reach.options()...)
		return libp2p.New(append(opts, libp2p.Identity(sk), libp2p.BandwidthReporter(n.bw), libp2p.ListenAddrStrings(listen...))...)
	}
	if len(listen) == 0 {
		listen = []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1", "/ip6/::/tcp/4001", "/ip6/::/udp/4001/quic-v1"}
		h, err := newHost(listen)
		if err == nil {
			return h, nil
		}
		listen = []string{"/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1", "/ip6/::/tcp/0", "/ip6/::/udp/0/quic-v1"}
	}
	for _, a := range listen {
		if _, err := ma.NewMultiaddr(a); err != nil {
			return nil, errorf(api.KindInvalid, "listen address %q: %v", a, err)
		}
	}
	return newHost(listen)
}

func pubBytes(k crdt.PublicKey) []byte { return k[:] }

// Serve runs the node until ctx is done, then stops everything it started
// and closes the node.
func (n *Node) Serve(ctx context.Context) (err error) {
	defer func() { err = errors.Join(err, n.Close()) }()
	h, err := n.newHost()
	if err != nil {
		return err
	}
	n.host = h
	defer h.Close()
	if n.trace != nil {
		n.metrics.path.traceTo(n.trace, h.ID())
	}
	guard := newDiskGuard(n.store.Dir(), n.store.Reserve(), n.log)
	if n.replica, err = NewReplica(h, guardedStore{n.store, guard}, n.ident, ReplicaOptions{Logger: n.log, Seed: uint64(time.Now().UnixNano()), PrefsPath: filepath.Join(n.cfg.Home, prefsFile), Keys: KeyOptions{KEM: n.kem}, Tracer: n.metrics, crashAfterRotate: crashAfterRotate()}); err != nil {
		return err
	}
	n.replicaP.Store(n.replica)
	n.engine = n.replica.Engine
	n.watchMetrics(h)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := n.reach.start(ctx, h); err != nil {
		return err
	}
	defer n.reach.close()

	n.registerAPI(h)
	if err := n.registerCallNet(h); err != nil {
		return err
	}

	// Every loop's error is kept (a slice, not a channel of some capacity:
	// more loops failing at once than a channel holds would block them and
	// so wg.Wait below).
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		all   []error
	)
	run := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx); err != nil {
				errMu.Lock()
				all = append(all, fmt.Errorf("%s: %w", name, err))
				errMu.Unlock()
				cancel()
			}
		}()
	}
	run("replica", n.replica.Serve)
	run("api", n.api.Serve)
	if n.metricsL != nil {
		run("metrics", n.metricsL.Serve)
	}
	run("store", n.store.Serve)
	run("disk", func(ctx context.Context) error {
		return guard.Serve(ctx, func(ctx context.Context) {
			select {
			case <-n.replica.Ready():
			case <-ctx.Done():
				return
			}
			n.replica.SyncNow(ctx)
			if err := n.engine.RetryLocal(ctx); err != nil {
				n.log.Debug("retry local writes", "err", err)
			}
		})
	})
	run("media", n.serveMedia)
	run("stun", n.serveCallNet)
	run("devices", n.serveDevices)
	run("calls", n.callPeers.Serve)
	run("peers", func(ctx context.Context) error { return n.redial(ctx, h) })
	if !n.cfg.NoPeerExchange {
		run("peer-records", func(ctx context.Context) error {
			return p2p.ServePeerRecords(ctx, h, func() *p2p.RoomGate { return n.replica.Gate() }, n.log)
		})
	}
	run("addrbook", func(ctx context.Context) error {
		return p2p.ServeAddrBook(ctx, h, n.store, func(p peer.ID) bool { g := n.replica.Gate(); return g != nil && g.ProvedAny(p) }, n.log)
	})
	if !n.cfg.NoMDNS {
		svc := mdns.NewMdnsService(h, "parley", &mdnsNotifee{ctx: ctx, h: h})
		if err := svc.Start(); err != nil {
			n.log.Warn("mdns", "err", err)
		} else {
			defer svc.Close()
		}
	}
	if !n.cfg.NoDHT {
		kad, err := dht.New(h, dht.Mode(dht.ModeAutoServer), dht.ProtocolPrefix("/parley"), dht.BootstrapPeers())
		if err != nil {
			n.log.Warn("dht", "err", err)
		} else {
			defer kad.Close()
			rdv := p2p.NewRendezvous(h, kad, n.engine.RoomIDs, n.log)
			n.rdv.Store(rdv)
			run("rendezvous", rdv.Serve)
		}
	}

	n.banner = Banner{PeerID: h.ID().String(), API: n.api.URL(), MDNS: !n.cfg.NoMDNS, DHT: !n.cfg.NoDHT, STUN: n.banner.STUN, TURN: n.banner.TURN}
	if n.metricsL != nil {
		n.banner.Metrics, n.banner.MetricsExposed = "http://"+n.metricsL.Addr()+api.MetricsPath, !n.metricsL.Loopback()
	}
	for _, a := range h.Network().ListenAddresses() {
		n.banner.AllInterfaces = n.banner.AllInterfaces || manet.IsIPUnspecified(a)
	}
	for _, a := range h.Addrs() {
		n.banner.Addrs = append(n.banner.Addrs, a.String()+"/p2p/"+h.ID().String())
	}
	apiPath := filepath.Join(n.cfg.Home, api.InfoFile)
	if err := writeJSON(apiPath, api.Info{URL: n.api.URL(), Token: n.token}, 0o600); err != nil {
		cancel()
		wg.Wait()
		return fmt.Errorf("write api file: %w", err)
	}
	defer os.Remove(apiPath)
	close(n.ready)
	n.log.Info("ready", "peer", h.ID(), "api", n.api.URL())

	<-ctx.Done()
	wg.Wait()
	return errors.Join(all...)
}

type mdnsNotifee struct {
	ctx context.Context
	h   host.Host
}

func (m *mdnsNotifee) HandlePeerFound(pi peer.AddrInfo) {
	if pi.ID == m.h.ID() {
		return
	}
	ctx, cancel := context.WithTimeout(m.ctx, 10*time.Second)
	defer cancel()
	m.h.Connect(ctx, pi)
}

// redial keeps remembered and bootstrap peers connected.
func (n *Node) redial(ctx context.Context, h host.Host) error {
	rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for {
		targets := append(slices.Clone(n.cfg.Bootstrap), n.peers.List()...)
		for _, a := range targets {
			pi, err := peer.AddrInfoFromString(a)
			if err != nil || pi.ID == h.ID() || h.Network().Connectedness(pi.ID) == network.Connected {
				continue
			}
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			p2p.ClearBackoff(h, pi.ID)
			if err := h.Connect(dctx, *pi); err != nil {
				n.log.Debug("redial", "peer", pi.ID, "err", err)
			}
			cancel()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2*time.Second + time.Duration(rng.IntN(1000))*time.Millisecond):
		}
	}
}

// watchMetrics registers the gauges read at scrape time.
func (n *Node) watchMetrics(h host.Host) {
	n.metrics.Watch(NodeState{
		Peers: func() int { return len(h.Network().Peers()) },
		Rooms: func(ctx context.Context) (int, error) {
			c, _, err := n.engine.RoomCount(ctx)
			return c, err
		},
		StoreBytes: func() int64 { return dirSize(filepath.Join(n.cfg.Home, storeDir)) },
		MediaBytes: func() int64 { return dirSize(filepath.Join(n.cfg.Home, mediaDir)) },
	})
	n.metrics.WatchBandwidth(n.bw)
}
