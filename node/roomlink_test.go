package node

import (
	"slices"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/crdt"
)

const linkPeer = "12D3KooWBuUSA4FrQaRWmSYoFHJLpcgU2NNrz2QUBBCRMzRPe63t"

func TestRoomLinkRoundTrip(t *testing.T) {
	room := crdt.IDOf([]byte("a room"))
	addrs := []string{
		"/ip4/127.0.0.1/tcp/4001/p2p/" + linkPeer,
		"/ip4/192.168.1.7/tcp/4001/p2p/" + linkPeer,
		"/ip4/10.77.0.2/tcp/4001/p2p/12D3KooWEPaeqx3GVU1N3vbtFfpjLXbPKHaGeaEKcpagvW6JNwwC/p2p-circuit/p2p/" + linkPeer,
		"not an address",
	}
	link := RoomLink(room, addrs)
	if !strings.HasPrefix(link, RoomLinkPrefix+room.String()+"?via=") {
		t.Fatalf("link %q", link)
	}
	got, via, err := ParseRoomLink(link)
	if err != nil {
		t.Fatal(err)
	}
	// relay first, then the LAN address; loopback left out
	want := []string{addrs[2], addrs[1]}
	if got != room || !slices.Equal(via, want) {
		t.Fatalf("parsed %s %v, want %s %v", got, via, room, want)
	}
	// only loopback: kept (a node on one machine)
	if _, via, _ := ParseRoomLink(RoomLink(room, addrs[:1])); !slices.Equal(via, addrs[:1]) {
		t.Fatalf("loopback-only link lost its address: %v", via)
	}
	if _, via, err := ParseRoomLink(RoomLink(room, nil)); err != nil || len(via) != 0 {
		t.Fatalf("bare link: %v %v", via, err)
	}
	for _, bad := range []string{
		"",
		"https://example.org/room/" + room.String(),
		RoomLinkPrefix + "nope",
		RoomLinkPrefix + room.String() + "?via=/ip4/1.2.3.4/tcp/1",
		RoomLinkPrefix + room.String() + "?via=garbage",
		RoomLinkPrefix + room.String() + "?other=1",
		RoomLinkPrefix + room.String() + "?via=%zz",
	} {
		if _, _, err := ParseRoomLink(bad); err == nil {
			t.Errorf("ParseRoomLink(%q) accepted", bad)
		}
	}
}

func FuzzParseRoomLink(f *testing.F) {
	room := crdt.IDOf([]byte("a room"))
	f.Add(RoomLink(room, []string{"/ip4/192.168.1.7/tcp/4001/p2p/" + linkPeer}))
	f.Add(RoomLinkPrefix + room.String())
	f.Add(RoomLinkPrefix + room.String() + "?via=%zz")
	f.Add("parley://room/?via=")
	f.Fuzz(func(t *testing.T, s string) {
		id, via, err := ParseRoomLink(s)
		if err != nil {
			return
		}
		// what parses formats back to a link that parses to the same room
		id2, via2, err := ParseRoomLink(RoomLink(id, via))
		if err != nil || id2 != id || len(via2) > len(via) {
			t.Fatalf("%q: reformatted %v %v %v", s, id2, via2, err)
		}
	})
}
