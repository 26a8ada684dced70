package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/parley-p2p/parley/node"
)

// The commands here run the node itself or work on its home directly
// (init, daemon, device join), so only they import package node; every
// other command talks to the daemon through package api.

// parley init [--name NAME]
//
// Creates the user master key, the device key and the store in the home. An
// existing identity is left as it is. Works without a daemon.
func runInit(c *cli, args []string) error {
	fs := c.flags()
	name := fs.String("name", "", "display `NAME` of this user")
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	home := c.home()
	res, err := node.Init(home, *name)
	if err != nil {
		return fmt.Errorf("init %s: %v", home, c.explain(err))
	}
	if c.json {
		return c.printJSON(res)
	}
	if res.Created {
		fmt.Fprintf(c.stdout, "created a new identity in %s\n", home)
	} else {
		fmt.Fprintf(c.stdout, "an identity already exists in %s; nothing changed\n", home)
	}
	fmt.Fprintf(c.stdout, "user    %s\ndevice  %s\n", res.User, res.Device)
	return nil
}

// banner is what the daemon prints once ready; --json prints it as one object.
type banner struct {
	Home    string   `json:"home"`
	PeerID  string   `json:"peer_id"`
	Addrs   []string `json:"addrs"`
	API     string   `json:"api"`
	Metrics string   `json:"metrics,omitempty"`
	STUN    string   `json:"stun,omitempty"`
	TURN    bool     `json:"turn,omitempty"`
}

// parley daemon [--listen MULTIADDR]... [--api HOST:PORT] [--bootstrap MULTIADDR]... [--no-mdns] [--no-dht] [--relay[=open]] [--relay-circuit-bytes BYTES] [--no-peer-exchange] [--no-portmap] [--reachability public|private] [--stun HOST:PORT] [--no-stun] [--turn] [--turn-ip IP] [--turn-ports MIN-MAX] [--turn-kbps N] [--turn-total-kbps N]
//
// Runs the node in the foreground. SIGINT or SIGTERM shuts it down cleanly;
// a second one ends the process at once. Logs go to stderr.
func runDaemon(c *cli, args []string) error {
	fs := c.flags()
	var listen, bootstrap multiFlag
	fs.Var(&listen, "listen", "listen on `MULTIADDR` (repeatable)")
	api := fs.String("api", node.DefaultAPI, "serve the local API on loopback `HOST:PORT` (port 0: a free one)")
	fs.Var(&bootstrap, "bootstrap", "dial `MULTIADDR` at start and keep it connected (repeatable)")
	noMDNS := fs.Bool("no-mdns", false, "disable LAN discovery")
	noDHT := fs.Bool("no-dht", false, "disable the DHT")
	relay := relayFlag("")
	fs.Var(&relay, "relay", "offer circuit relay v2 to peers that share a room (`--relay=open`: to any peer)")
	relayBytes := fs.Int64("relay-circuit-bytes", 0, "with --relay: close a relayed circuit after `BYTES` each way (default 1 MiB)")
	noPeerExchange := fs.Bool("no-peer-exchange", false, "neither ask room members for other members' signed addresses nor hand them out")
	noPortMap := fs.Bool("no-portmap", false, "do not map a port on the router (UPnP, NAT-PMP)")
	reachability := fs.String("reachability", "", "override AutoNAT: `public` (this address is reachable) or private (always use relays)")
	logLevel := fs.String("log-level", "info", "log `LEVEL`: debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "log `FORMAT` on stderr: text or json")
	metrics := fs.String("metrics", "", "also serve the Prometheus metrics without a token on `HOST:PORT` (they are always at /metrics on the API, behind its token)")
	gossipTrace := fs.String("gossip-trace", "", "append a line to `FILE` for each copy of a gossiped event this node receives and each it publishes (a diagnostic: docs/operators.md)")
	stun := fs.String("stun", "", "answer STUN on UDP `HOST:PORT` (default: the listen address, port 3478 or a free one)")
	noSTUN := fs.Bool("no-stun", false, "answer no STUN")
	turnOn := fs.Bool("turn", false, "run a TURN relay on the STUN port for members of rooms this node shares")
	turnIP := fs.String("turn-ip", "", "relay `IP` the TURN relay announces (default: the STUN address, or this node's public address)")
	turnPorts := fs.String("turn-ports", "", "take relayed UDP ports from `MIN-MAX` (default: any free port)")
	turnKbps := fs.Int("turn-kbps", node.DefaultTURNAllocKbps, "bound each TURN allocation to `N` kbit/s, both directions together")
	turnTotal := fs.Int("turn-total-kbps", node.DefaultTURNTotalKbps, "bound the whole TURN relay to `N` kbit/s")
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if err := applyConfig(fs, c.home()); err != nil {
		return err
	}
	logger, err := newLogger(c.stderr, *logLevel, *logFormat)
	if err != nil {
		return c.usagef("%v", err)
	}
	if *metrics != "" {
		if _, _, err := net.SplitHostPort(*metrics); err != nil {
			return fmt.Errorf("bad --metrics address %q: want HOST:PORT such as 127.0.0.1:9090", *metrics)
		}
	}
	for _, a := range listen {
		if _, err := parseAddr(a, false); err != nil {
			return err
		}
	}
	for _, a := range bootstrap {
		if _, err := parseAddr(a, true); err != nil {
			return err
		}
	}
	if *relayBytes < 0 || *relayBytes > 0 && *relayBytes < node.MinRelayCircuitBytes {
		return c.usagef("bad --relay-circuit-bytes %d (at least %d)", *relayBytes, node.MinRelayCircuitBytes)
	}
	if *reachability != "" && *reachability != node.ReachPublic && *reachability != node.ReachPrivate {
		return c.usagef("bad --reachability %q (use public or private)", *reachability)
	}
	if *stun != "" {
		if _, _, err := net.SplitHostPort(*stun); err != nil {
			return fmt.Errorf("bad --stun address %q: want HOST:PORT such as 0.0.0.0:3478", *stun)
		}
	}
	if *turnKbps <= 0 || *turnTotal <= 0 {
		return c.usagef("--turn-kbps and --turn-total-kbps want a positive number of kbit/s")
	}
	if _, _, err := net.SplitHostPort(*api); err != nil {
		return fmt.Errorf("bad --api address %q: want HOST:PORT such as %s", *api, node.DefaultAPI)
	}

	home := c.home()
	n, err := node.Open(node.Config{
		Home:           home,
		Listen:         listen,
		API:            *api,
		Bootstrap:      bootstrap,
		NoMDNS:         *noMDNS,
		NoDHT:          *noDHT,
		Relay:          string(relay),
		RelayBytes:     *relayBytes,
		NoPeerExchange: *noPeerExchange,
		NoPortMap:      *noPortMap,
		Reachability:   *reachability,
		Logger:         logger,
		Metrics:        *metrics,
		GossipTrace:    *gossipTrace,
		STUN:           *stun,
		NoSTUN:         *noSTUN,
		TURN:           node.TURNConfig{On: *turnOn, IP: *turnIP, Ports: *turnPorts, AllocKbps: *turnKbps, TotalKbps: *turnTotal},
	})
	if errors.Is(err, node.ErrRunning) {
		return c.explain(err) // "a daemon already runs for HOME"
	}
	if err != nil {
		return fmt.Errorf("start the node in %s: %v", home, c.explain(err))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if os.Getenv("GOMEMLIMIT") == "" {
		go node.FollowMemoryLimit(ctx, node.DaemonMemoryLimit)
	}
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second signal ends the process at once
	}()
	errc := make(chan error, 1)
	go func() { errc <- n.Serve(ctx) }()

	select {
	case <-n.Ready():
		if err := c.printBanner(home, n.Banner()); err != nil {
			stop()
			<-errc
			n.Close()
			return err
		}
		err = <-errc
	case err = <-errc:
	}
	if cerr := n.Close(); err == nil {
		err = cerr
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("daemon for %s: %v", home, c.explain(err))
	}
	return nil
}

func (c *cli) printBanner(home string, b node.Banner) error {
	if c.json {
		return c.printJSON(banner{Home: home, PeerID: b.PeerID, Addrs: b.Addrs, API: b.API, Metrics: b.Metrics, STUN: b.STUN, TURN: b.TURN})
	}
	w := c.stdout
	fmt.Fprintf(w, "parley daemon ready\n")
	fmt.Fprintf(w, "home     %s\n", home)
	fmt.Fprintf(w, "peer ID  %s\n", b.PeerID)
	for _, a := range b.Addrs {
		fmt.Fprintf(w, "listen   %s\n", a)
	}
	fmt.Fprintf(w, "api      %s\n", b.API)
	if b.STUN != "" {
		relay := ""
		if b.TURN {
			relay = " (and TURN relay)"
		}
		fmt.Fprintf(w, "stun     udp %s%s\n", b.STUN, relay)
	}
	if b.Metrics != "" {
		fmt.Fprintf(w, "metrics  %s\n", b.Metrics)
		if b.MetricsExposed {
			fmt.Fprintf(w, "         (warning: not a loopback address; anyone who reaches it reads the metrics without a token)\n")
		}
	}
	if reach := reachOf(b); reach != "" {
		fmt.Fprintf(w, "network  %s\n", reach)
		fmt.Fprintf(w, "         (a loopback-only node: parley daemon %s)\n", loopbackFlags)
	}
	return nil
}

// loopbackFlags start a node that no other machine can reach or find.
const loopbackFlags = "--listen /ip4/127.0.0.1/tcp/0 --no-mdns --no-dht"

// reachOf says how far a daemon reaches beyond this machine, or "" when
// it does not.
func reachOf(b node.Banner) string {
	var parts []string
	if b.AllInterfaces {
		parts = append(parts, "listens on all interfaces")
	}
	if b.MDNS {
		parts = append(parts, "mDNS on (found by LAN peers)")
	}
	if b.DHT {
		parts = append(parts, "DHT on (found through the internet)")
	}
	return strings.Join(parts, ", ")
}

// parley device join CODE
//
// Runs without a daemon, on a fresh home: it reaches the linking device,
// receives this device's certificate and the user's rooms, and writes the
// identity. Start the daemon afterwards; it joins the rooms' device sets
// and a sibling forwards the keys.
func runDeviceJoin(c *cli, args []string) error {
	pos, err := c.parse(c.flags(), args, 1, 1)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.ctx, callTimeout)
	defer cancel()
	res, err := node.JoinDevice(ctx, c.home(), pos[0])
	if err != nil {
		return c.explain(err)
	}
	if c.json {
		return c.printJSON(res)
	}
	fmt.Fprintf(c.stdout, "this home is now a device of user %s\ndevice  %s\nrooms   %d (followed when the daemon starts: parley daemon)\n", res.User, res.Device, len(res.Rooms))
	return nil
}

// relayFlag is --relay (serve room peers) or --relay=open (serve anyone).
type relayFlag string

func (f *relayFlag) String() string   { return string(*f) }
func (f *relayFlag) IsBoolFlag() bool { return true }
func (f *relayFlag) Set(s string) error {
	switch s {
	case "true", node.RelayRooms:
		*f = node.RelayRooms
	case "false":
		*f = node.RelayOff
	case node.RelayOpen:
		*f = node.RelayOpen
	default:
		return fmt.Errorf("want --relay or --relay=open")
	}
	return nil
}
