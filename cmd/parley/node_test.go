package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/node"
)

// TestBannerReach: the banner says when the node listens on all interfaces
// with mDNS and the DHT on, and how to start a loopback-only one; a
// loopback-only node's banner says nothing of it.
func TestBannerReach(t *testing.T) {
	var out bytes.Buffer
	c := &cli{stdout: &out}
	if err := c.printBanner("/h", node.Banner{PeerID: "P", Addrs: []string{"/ip4/10.0.0.1/tcp/4001/p2p/P"}, API: "http://127.0.0.1:4080", AllInterfaces: true, MDNS: true, DHT: true}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"listens on all interfaces", "mDNS on", "DHT on", "--listen /ip4/127.0.0.1/tcp/0 --no-mdns --no-dht"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := c.printBanner("/h", node.Banner{PeerID: "P", API: "http://127.0.0.1:4080"}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "network") {
		t.Errorf("a loopback-only banner:\n%s", out.String())
	}
}
