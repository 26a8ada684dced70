package node

import (
	"errors"
	"io/fs"
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
)

// PeerBook remembers the peers a user connected to, so a restarted daemon
// redials them. It is a small JSON file written atomically on each change.
type PeerBook struct {
	path  string
	mu    sync.Mutex
	addrs []string // guarded by mu; full multiaddrs ending in /p2p/ID
}

// LoadPeerBook reads the book at path (empty when the file does not exist).
func LoadPeerBook(path string) (*PeerBook, error) {
	b := &PeerBook{path: path}
	var file struct {
		Peers []string `json:"peers"`
	}
	if err := readJSON(path, &file); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	b.addrs = file.Peers
	return b, nil
}

// List returns the remembered addresses.
func (b *PeerBook) List() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.addrs)
}

// Add remembers addr.
func (b *PeerBook) Add(addr string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if slices.Contains(b.addrs, addr) {
		return nil
	}
	b.addrs = append(b.addrs, addr)
	return b.saveLocked()
}

// Forget drops every address of p.
func (b *PeerBook) Forget(p peer.ID) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.addrs = slices.DeleteFunc(b.addrs, func(a string) bool {
		pi, err := peer.AddrInfoFromString(a)
		return err == nil && pi.ID == p
	})
	return b.saveLocked()
}

func (b *PeerBook) saveLocked() error {
	return writeJSON(b.path, map[string][]string{"peers": b.addrs}, 0o600)
}
