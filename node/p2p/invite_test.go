package p2p

import (
	"fmt"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// An invite keeps only the addresses of the node that delivered it, at
// most MaxInviteAddrs, each at most maxInviteAddrLen long, without repeats.
func TestInviteVia(t *testing.T) {
	const from = "12D3KooWSvjzLqnWtUrstEmwDmjoUDBcdfMpZgBjuNdpn3nD4rJr"
	const other = "12D3KooWEmWVwtxCDQDF86LUL5UyEL81Ag394ZY6nXt88rgYVJgj"
	p, err := peer.Decode(from)
	if err != nil {
		t.Fatal(err)
	}
	circuit := "/ip4/11.77.0.2/tcp/4001/p2p/" + other + "/p2p-circuit/p2p/" + from
	direct := "/ip4/11.77.1.2/tcp/4001/p2p/" + from
	in := []string{circuit, "garbage", "/ip4/11.77.1.2/tcp/4001", "/ip4/11.77.1.2/tcp/4001/p2p/" + other, direct, direct,
		"/dns4/" + strings.Repeat("x", maxInviteAddrLen) + "/tcp/1/p2p/" + from}
	for i := range 2 * MaxInviteAddrs {
		in = append(in, fmt.Sprintf("/ip4/11.77.1.2/tcp/%d/p2p/%s", 5000+i, from))
	}
	got := inviteVia(in, p)
	if len(got) != MaxInviteAddrs || got[0] != circuit || got[1] != direct || got[2] != "/ip4/11.77.1.2/tcp/5000/p2p/"+from {
		t.Fatalf("inviteVia kept %q", got)
	}
}
