package node

import (
	"context"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	dssync "github.com/ipfs/go-datastore/sync"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/p2p"
)

// A private room's id never reaches the DHT (issue 13): a member provides
// the room's rendezvous key to a DHT server, a newcomer finds the member
// through it, and every key and value the server stores holds neither the
// room id nor its wire reference, in any of the encodings the DHT uses.
func TestRendezvousRecordsHideRoom(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mn := mocknet.New()
	defer mn.Close()
	hosts := make([]host.Host, 3) // server, member, newcomer
	for i := range hosts {
		h, err := mn.GenPeer()
		if err != nil {
			t.Fatal(err)
		}
		hosts[i] = h
	}
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	store := dssync.MutexWrap(ds.NewMapDatastore())
	kads := make([]*dht.IpfsDHT, len(hosts))
	for i, h := range hosts {
		opts := []dht.Option{dht.Mode(dht.ModeServer), dht.ProtocolPrefix("/parley"), dht.BootstrapPeers()}
		if i == 0 {
			opts = append(opts, dht.Datastore(store), dht.ProviderDatastore(store))
		}
		kad, err := dht.New(h, opts...)
		if err != nil {
			t.Fatal(err)
		}
		kads[i] = kad
		if i > 0 {
			defer kad.Close()
		}
	}
	closeServer := sync.OnceValue(kads[0].Close)
	defer closeServer()
	if err := mn.ConnectAllButSelf(); err != nil {
		t.Fatal(err)
	}
	// The member provides once, then every rendezvousEvery: wait until
	// every routing table holds the two others, or the one provide can miss
	// the server (a loaded machine delays the DHT's protocol checks).
	eventually(t, 60*time.Second, "every routing table holds the other two peers", func() (bool, string) {
		for i, kad := range kads {
			if n := kad.RoutingTable().Size(); n < len(kads)-1 {
				return false, fmt.Sprintf("peer %d: %d in its routing table", i, n)
			}
		}
		return true, ""
	})
	room := crdt.IDOf([]byte("a private room"))
	rdv := p2p.NewRendezvous(hosts[1], kads[1], func(context.Context) []crdt.RoomID { return []crdt.RoomID{room} }, slog.New(slog.DiscardHandler))
	done := make(chan struct{})
	go func() { defer close(done); rdv.Serve(ctx) }()
	defer func() { cancel(); <-done }()

	eventually(t, 60*time.Second, "the newcomer finds the member by the room's rendezvous key", func() (bool, string) {
		fctx, fcancel := context.WithTimeout(ctx, 5*time.Second)
		defer fcancel()
		for pi := range kads[2].FindProvidersAsync(fctx, p2p.RendezvousKey(room), 1) {
			if pi.ID == hosts[1].ID() {
				return true, ""
			}
		}
		return false, "no provider found"
	})
	// The newcomer may have found the member through the member itself;
	// wait until the server holds the record too (a loaded machine delays
	// the member's provide).
	eventually(t, 60*time.Second, "the DHT server holds the member's provider record", func() (bool, string) {
		provs, err := kads[0].ProviderStore().GetProviders(ctx, p2p.RendezvousKey(room).Hash())
		return err == nil && len(provs) > 0, fmt.Sprintf("%d providers (%v)", len(provs), err)
	})
	// The server keeps provider records in memory and writes them to its
	// datastore in batches, and on close.
	if err := closeServer(); err != nil {
		t.Fatal(err)
	}
	res, err := store.Query(ctx, dsq.Query{KeysOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if provs, err := res.Rest(); err != nil || len(provs) == 0 {
		t.Fatalf("the DHT server stored no provider record (%v)", err)
	}

	ref := p2p.RefOf(room)
	forms := map[string]string{}
	for name, b := range map[string][]byte{"room id": []byte(room), "room reference": ref[:], "room id multihash": cid.MustParse([]byte(room)).Hash()} {
		forms[name+" (raw)"] = string(b)
		forms[name+" (base32)"] = base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)
		forms[name+" (hex)"] = hex.EncodeToString(b)
	}
	forms["room id (text)"] = room.String()
	res, err = store.Query(ctx, dsq.Query{})
	if err != nil {
		t.Fatal(err)
	}
	all, err := res.Rest()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range all {
		for name, f := range forms {
			for _, s := range []string{e.Key, string(e.Value)} {
				if strings.Contains(strings.ToLower(s), strings.ToLower(f)) {
					t.Fatalf("the DHT server stores the %s under %s", name, e.Key)
				}
			}
		}
	}
	t.Logf("%d records stored by the DHT server, none with the room id or reference", len(all))
}
