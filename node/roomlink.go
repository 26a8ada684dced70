package node

import (
	"net/url"
	"slices"
	"strings"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
)

// A room link (docs/protocol.md §9.2) names a room and a few peers to
// reach it through:
//
//	parley://room/ROOM_ID?via=MULTIADDR&via=MULTIADDR
//
// with each multiaddr query-escaped and ending in /p2p/PEER_ID. It is what
// `parley room link` prints and `parley room join` accepts in place of a
// room ID.

// RoomLinkPrefix starts every room link.
const RoomLinkPrefix = "parley://room/"

// roomLinkMaxVia is how many addresses a link carries at most.
const roomLinkMaxVia = 4

// RoomLink formats a link to room through addrs: those other peers can
// dial (not loopback unless nothing else is there), relay addresses and
// public ones first, at most four.
func RoomLink(room crdt.RoomID, addrs []string) string {
	var ms []ma.Multiaddr
	for _, s := range addrs {
		if m, err := ma.NewMultiaddr(s); err == nil {
			ms = append(ms, m)
		}
	}
	ms = dialOrder(ms)
	q := url.Values{}
	for _, m := range ms[:min(len(ms), roomLinkMaxVia)] {
		q.Add("via", m.String())
	}
	s := RoomLinkPrefix + room.String()
	if len(q) > 0 {
		s += "?" + q.Encode()
	}
	return s
}

// dialOrder sorts addresses for another peer to dial: relay addresses
// first, then public ones, then private ones; loopback ones last, and only
// when there is nothing else.
func dialOrder(ms []ma.Multiaddr) []ma.Multiaddr {
	rank := func(m ma.Multiaddr) int {
		switch {
		case isRelayed(m):
			return 0
		case manet.IsPublicAddr(m):
			return 1
		case manet.IsIPLoopback(m):
			return 3
		}
		return 2
	}
	ms = slices.Clone(ms)
	slices.SortStableFunc(ms, func(a, b ma.Multiaddr) int { return rank(a) - rank(b) })
	if len(ms) > 0 && rank(ms[0]) < 3 {
		ms = slices.DeleteFunc(ms, func(m ma.Multiaddr) bool { return rank(m) == 3 })
	}
	return ms
}

// ParseRoomLink reads a room link: the room and the addresses to join it
// through. Every address must be a multiaddr ending in /p2p/PEER_ID.
func ParseRoomLink(s string) (crdt.RoomID, []string, error) {
	rest, ok := strings.CutPrefix(s, RoomLinkPrefix)
	if !ok {
		return crdt.RoomID(""), nil, errorf(api.KindInvalid, "a room link starts with %s", RoomLinkPrefix)
	}
	id, query, _ := strings.Cut(rest, "?")
	room, err := crdt.ParseID(id)
	if err != nil {
		return crdt.RoomID(""), nil, errorf(api.KindInvalid, "room link: %q is not a room ID", id)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return crdt.RoomID(""), nil, errorf(api.KindInvalid, "room link: malformed query: %v", err)
	}
	var via []string
	for k, vs := range q {
		if k != "via" {
			return crdt.RoomID(""), nil, errorf(api.KindInvalid, "room link: unknown parameter %q", k)
		}
		for _, v := range vs {
			m, err := ma.NewMultiaddr(v)
			if err != nil {
				return crdt.RoomID(""), nil, errorf(api.KindInvalid, "room link: %q is not a multiaddr", v)
			}
			if _, err := m.ValueForProtocol(ma.P_P2P); err != nil {
				return crdt.RoomID(""), nil, errorf(api.KindInvalid, "room link: %q has no /p2p/PEER_ID part", v)
			}
			via = append(via, m.String())
		}
	}
	if len(via) > 4*roomLinkMaxVia {
		return crdt.RoomID(""), nil, errorf(api.KindInvalid, "room link: more than %d addresses", 4*roomLinkMaxVia)
	}
	return room, via, nil
}
