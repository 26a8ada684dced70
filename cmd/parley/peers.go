package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-p2p/parley/api"
)

// parley id
func runID(c *cli, args []string) error {
	if err := c.noArgs(args); err != nil {
		return err
	}
	var r api.IDResp
	return call(c, api.EpID, api.Empty{}, &r, func(w io.Writer) {
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
	var r api.PeersResp
	return call(c, api.EpPeers, api.Empty{}, &r, func(w io.Writer) {
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
	var r api.PeerResp
	return call(c, api.EpConnect, api.AddrReq{Addr: addr}, &r, func(w io.Writer) {
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
	var r api.PeerResp
	return call(c, api.EpDisconnect, api.PeerReq{PeerID: pos[0]}, &r, func(w io.Writer) {
		fmt.Fprintf(w, "disconnected from %s (forgotten; it will not be redialled)\n", r.PeerID)
	})
}

// parley status
func runStatus(c *cli, args []string) error {
	if err := c.noArgs(args); err != nil {
		return err
	}
	var r api.StatusResp
	return call(c, api.EpStatus, api.Empty{}, &r, func(w io.Writer) {
		fmt.Fprintf(w, "peers    %d\nrooms    %d\nstore    %s\n", r.Peers, r.Rooms, fmtBytes(r.StoreBytes))
		if r.Reachability != "" {
			fmt.Fprintf(w, "reach    %s\n", r.Reachability)
			if len(r.Relays) > 0 {
				fmt.Fprintf(w, "relays   %s\n", strings.Join(r.Relays, " "))
			}
			if r.RelayService != "" && r.RelayService != "off" {
				fmt.Fprintf(w, "relaying %s\n", r.RelayService)
			}
			for _, a := range r.Addrs {
				fmt.Fprintf(w, "addr     %s\n", a)
			}
		}
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
