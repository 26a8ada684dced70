package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-p2p/parley/node"
)

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
	Home   string   `json:"home"`
	PeerID string   `json:"peer_id"`
	Addrs  []string `json:"addrs"`
	API    string   `json:"api"`
}

// parley daemon [--listen MULTIADDR]... [--api HOST:PORT] [--bootstrap MULTIADDR]... [--no-mdns] [--no-dht]
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
	logLevel := fs.String("log-level", "info", "log `LEVEL`: debug, info, warn or error")
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return c.usagef("bad --log-level %q (use debug, info, warn or error)", *logLevel)
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
	if _, _, err := net.SplitHostPort(*api); err != nil {
		return fmt.Errorf("bad --api address %q: want HOST:PORT such as %s", *api, node.DefaultAPI)
	}

	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(node.DaemonMemoryLimit)
	}
	home := c.home()
	n, err := node.Open(node.Config{
		Home:      home,
		Listen:    listen,
		API:       *api,
		Bootstrap: bootstrap,
		NoMDNS:    *noMDNS,
		NoDHT:     *noDHT,
		Logger:    slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: level})),
	})
	if errors.Is(err, node.ErrRunning) {
		return c.explain(err) // "a daemon already runs for HOME"
	}
	if err != nil {
		return fmt.Errorf("start the node in %s: %v", home, c.explain(err))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
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
		return c.printJSON(banner{Home: home, PeerID: b.PeerID, Addrs: b.Addrs, API: b.API})
	}
	w := c.stdout
	fmt.Fprintf(w, "parley daemon ready\n")
	fmt.Fprintf(w, "home     %s\n", home)
	fmt.Fprintf(w, "peer ID  %s\n", b.PeerID)
	for _, a := range b.Addrs {
		fmt.Fprintf(w, "listen   %s\n", a)
	}
	fmt.Fprintf(w, "api      %s\n", b.API)
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

// parley id
func runID(c *cli, args []string) error {
	if err := c.noArgs(args); err != nil {
		return err
	}
	var r node.IDResp
	return call(c, node.EpID, node.Empty{}, &r, func(w io.Writer) {
		fmt.Fprintf(w, "user     %s\ndevice   %s\npeer ID  %s\n", r.User, r.Device, r.PeerID)
		for _, a := range r.Addrs {
			fmt.Fprintf(w, "address  %s\n", a)
		}
	})
}

// parley peers
func runPeers(c *cli, args []string) error {
	if err := c.noArgs(args); err != nil {
		return err
	}
	var r node.PeersResp
	return call(c, node.EpPeers, node.Empty{}, &r, func(w io.Writer) {
		if len(r.Peers) == 0 {
			fmt.Fprintln(w, "no peers connected (add one with: parley connect MULTIADDR)")
			return
		}
		tw := table(w)
		fmt.Fprintln(tw, "PEER ID\tADDRESS\tSCORE")
		for _, p := range r.Peers {
			score := "-"
			if p.Score != nil {
				score = fmt.Sprintf("%.2f", *p.Score)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", p.PeerID, p.Addr, score)
		}
		tw.Flush()
	})
}

// parley connect MULTIADDR
func runConnect(c *cli, args []string) error {
	fs := c.flags()
	pos, err := c.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	addr, err := parseAddr(pos[0], true)
	if err != nil {
		return err
	}
	var r node.PeerResp
	return call(c, node.EpConnect, node.AddrReq{Addr: addr}, &r, func(w io.Writer) {
		fmt.Fprintf(w, "connected to %s (remembered for reconnection)\n", r.PeerID)
	})
}

// parley disconnect PEER_ID
func runDisconnect(c *cli, args []string) error {
	fs := c.flags()
	pos, err := c.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if _, err := peer.Decode(pos[0]); err != nil {
		return fmt.Errorf("malformed peer ID %q (see: parley peers)", pos[0])
	}
	var r node.PeerResp
	return call(c, node.EpDisconnect, node.PeerReq{PeerID: pos[0]}, &r, func(w io.Writer) {
		fmt.Fprintf(w, "disconnected from %s (forgotten; it will not be redialled)\n", r.PeerID)
	})
}

// parley status
func runStatus(c *cli, args []string) error {
	if err := c.noArgs(args); err != nil {
		return err
	}
	var r node.StatusResp
	return call(c, node.EpStatus, node.Empty{}, &r, func(w io.Writer) {
		fmt.Fprintf(w, "peers    %d\nrooms    %d\nstore    %s\n", r.Peers, r.Rooms, fmtBytes(r.StoreBytes))
		if len(r.Syncing) == 0 {
			fmt.Fprintln(w, "syncing  nothing (up to date)")
			return
		}
		fmt.Fprintf(w, "syncing  %s\n", strings.Join(r.Syncing, " "))
	})
}

// noArgs parses the flags of a command that takes no positional arguments.
func (c *cli) noArgs(args []string) error {
	_, err := c.parse(c.flags(), args, 0, 0)
	return err
}

// parseAddr checks a multiaddr; withPeer also requires its /p2p/PEER_ID part.
func parseAddr(s string, withPeer bool) (string, error) {
	m, err := ma.NewMultiaddr(s)
	if err != nil {
		return "", fmt.Errorf("malformed multiaddr %q (want e.g. /ip4/192.0.2.1/tcp/4001/p2p/PEER_ID)", s)
	}
	if withPeer {
		if _, err := m.ValueForProtocol(ma.P_P2P); err != nil {
			return "", fmt.Errorf("multiaddr %q has no /p2p/PEER_ID part (see: parley id, on that node)", s)
		}
	}
	return m.String(), nil
}
