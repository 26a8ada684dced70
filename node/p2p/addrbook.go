package p2p

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-p2p/parley/crdt"
)

// Addresses that last (docs/protocol.md §9.1): the addresses of the room
// peers this node reached (peers that proved a room it keeps), with when
// they were last seen, are kept in the store's node-local data, so a
// restarted node reconnects to its rooms' peers without a bootstrap peer
// or a --via. The book is written every addrBookEvery; entries not seen
// for addrBookMaxAge are dropped; it keeps at most addrBookMax peers, the
// most recently seen.

// addrBookKey is the node-local key of the address book.
var addrBookKey = []byte("reach/addrbook")

const (
	addrBookEvery  = 15 * time.Second
	addrBookMaxAge = 30 * 24 * time.Hour
	addrBookMax    = 256
	addrBookAddrs  = 8 // addresses kept per peer
)

// addrEntry is one remembered peer.
type addrEntry struct {
	Addrs []string `json:"addrs"`
	Seen  int64    `json:"seen"` // unix seconds
}

// AddrBookStore is what the address book needs of the store.
type AddrBookStore interface {
	PutLocal(k, v []byte) error
	GetLocal(k []byte) ([]byte, error)
}

// loadAddrBook reads the book; an unreadable one is started afresh (it is
// a cache of what the network says, not data the user wrote).
func loadAddrBook(st AddrBookStore, log *slog.Logger) map[peer.ID]addrEntry {
	book := map[peer.ID]addrEntry{}
	b, err := st.GetLocal(addrBookKey)
	if err != nil {
		if !errors.Is(err, crdt.ErrNotFound) {
			log.Warn("read address book", "err", err)
		}
		return book
	}
	raw, err := decodeAddrBook(b)
	if err != nil {
		log.Warn("address book unreadable, starting afresh", "err", err)
		return book
	}
	for k, e := range raw {
		if p, err := peer.Decode(k); err == nil {
			book[p] = e
		}
	}
	return book
}

// decodeAddrBook parses a stored book (the fuzz test's entry point).
func decodeAddrBook(b []byte) (map[string]addrEntry, error) {
	raw := map[string]addrEntry{}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("address book: %w", err)
	}
	return raw, nil
}

// ServeAddrBook keeps the book: at start it puts the remembered addresses
// into the peerstore and dials the peers; then it records the room peers
// it is connected to, and redials remembered ones it lost.
func ServeAddrBook(ctx context.Context, h host.Host, st AddrBookStore, proved func(peer.ID) bool, log *slog.Logger) error {
	book := loadAddrBook(st, log)
	dial := func() {
		for p, e := range book {
			if p == h.ID() || h.Network().Connectedness(p) == network.Connected {
				continue
			}
			var addrs []ma.Multiaddr
			for _, s := range e.Addrs {
				if a, err := ma.NewMultiaddr(s); err == nil {
					addrs = append(addrs, a)
				}
			}
			h.Peerstore().AddAddrs(p, addrs, peerstore.RecentlyConnectedAddrTTL)
			go func(pi peer.AddrInfo) {
				dctx, cancel := context.WithTimeout(network.WithAllowLimitedConn(ctx, "addrbook"), 10*time.Second)
				defer cancel()
				if err := h.Connect(dctx, pi); err != nil {
					log.Debug("addrbook dial", "peer", pi.ID, "err", err)
				}
			}(peer.AddrInfo{ID: p, Addrs: addrs})
		}
	}
	dial()
	t := time.NewTicker(addrBookEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			record(h, book, proved)
			return save(st, book)
		case <-t.C:
		}
		if record(h, book, proved) {
			if err := save(st, book); err != nil {
				log.Warn("save address book", "err", err)
			}
		}
		dial()
	}
}

// record notes the connected room peers' addresses; it reports a change.
func record(h host.Host, book map[peer.ID]addrEntry, proved func(peer.ID) bool) bool {
	now := time.Now()
	changed := false
	for _, p := range h.Network().Peers() {
		if !proved(p) {
			continue
		}
		var addrs []string
		for _, c := range h.Network().ConnsToPeer(p) {
			if c.Stat().Direction == network.DirOutbound {
				addrs = append(addrs, c.RemoteMultiaddr().String())
			}
		}
		for _, a := range h.Peerstore().Addrs(p) {
			addrs = append(addrs, a.String())
		}
		addrs = firstUnique(addrs, addrBookAddrs)
		if len(addrs) == 0 {
			continue
		}
		book[p] = addrEntry{Addrs: addrs, Seen: now.Unix()}
		changed = true
	}
	for p, e := range book {
		if now.Sub(time.Unix(e.Seen, 0)) > addrBookMaxAge {
			delete(book, p)
			changed = true
		}
	}
	if len(book) > addrBookMax {
		ps := make([]peer.ID, 0, len(book))
		for p := range book {
			ps = append(ps, p)
		}
		slices.SortFunc(ps, func(a, b peer.ID) int { return int(book[b].Seen - book[a].Seen) })
		for _, p := range ps[addrBookMax:] {
			delete(book, p)
		}
	}
	return changed
}

func save(st AddrBookStore, book map[peer.ID]addrEntry) error {
	raw := make(map[string]addrEntry, len(book))
	for p, e := range book {
		raw[p.String()] = e
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return err
	}
	return st.PutLocal(addrBookKey, b)
}

// firstUnique keeps the first n distinct strings, in order.
func firstUnique(ss []string, n int) []string {
	var out []string
	for _, s := range ss {
		if len(out) == n {
			break
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
