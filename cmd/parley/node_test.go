package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/api"
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

// TestInvitesDecline: 'invites decline ROOM' sends invites/decline with
// the room; without a room it is a usage error.
func TestInvitesDecline(t *testing.T) {
	f := startFake(t, map[string]string{api.EpInvitesDecline.Method: `{"room":"` + validID + `"}`})
	r := runCLI(t, "", "invites", "decline", validID, "--home", f.home)
	if r.code != 0 {
		t.Fatalf("invites decline: exit %d, stderr %q", r.code, r.stderr)
	}
	if f.request(api.EpInvitesDecline.Method) != `{"room":"`+validID+`"}` || r.stdout != "declined the invite to "+validID+"\n" {
		t.Errorf("invites decline: request %q output %q", f.request(api.EpInvitesDecline.Method), r.stdout)
	}
	if r := runCLI(t, "", "invites", "decline", "--home", f.home); r.code == 0 || !strings.Contains(r.stderr, "ROOM") {
		t.Errorf("invites decline without a room: exit %d, stderr %q", r.code, r.stderr)
	}
}
