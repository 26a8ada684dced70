package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/p2p"
	"github.com/parley-p2p/parley/rooms/e2ee"
)

// A home joins a user with `parley device join CODE` before its daemon
// first runs: a daemon's identity (its peer ID is its device key, and
// every component holds its user) is fixed for its lifetime, so linking
// happens while nothing runs. The join writes identity.json without a
// master seed and link.json with the rooms to follow; the daemon then
// follows them (serveDevices) and deletes link.json when done.

// linkFile lists what a newly linked device still has to follow.
const linkFile = "link.json"

type linkState struct {
	Rooms []string `json:"rooms"`
	Peers []string `json:"peers"`
}

// loadMaster returns the home's master key, or nil on a linked device.
func loadMaster(home string) (*crdt.SecretKey, error) {
	var kf keyFile
	if err := readJSON(filepath.Join(home, identityFile), &kf); err != nil {
		return nil, fmt.Errorf("read identity: %w", err)
	}
	if kf.UserSeed == nil {
		return nil, nil
	}
	return crdt.SecretKeyFromSeed(kf.UserSeed)
}

// JoinDevice makes a fresh home a device of the user whose device issued
// code (`parley device join`). The home must not have run a daemon: an
// identity made by `parley init` and never used gives up its master key
// and keeps its device key; otherwise a device key is made here.
func JoinDevice(ctx context.Context, home, codeText string) (api.DeviceJoinResult, error) {
	code, err := p2p.ParseLinkCode(codeText)
	if err != nil {
		return api.DeviceJoinResult{}, codef(api.KindInvalid, api.CodeNotLinkCode, "that is not a link code (one starts with %q)", p2p.LinkCodePrefix)
	}
	if _, err := os.Stat(filepath.Join(home, api.InfoFile)); err == nil {
		return api.DeviceJoinResult{}, errorf(api.KindInvalid, "a daemon runs on %s: device join works on a fresh home before its first start (use a new --home)", home)
	}
	if _, err := os.Stat(filepath.Join(home, storeDir)); err == nil {
		return api.DeviceJoinResult{}, errorf(api.KindInvalid, "%s has run a node already and keeps its identity: device join needs a fresh home (use a new --home)", home)
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		return api.DeviceJoinResult{}, fmt.Errorf("create home: %w", err)
	}
	path := filepath.Join(home, identityFile)
	var kf keyFile
	switch err := readJSON(path, &kf); {
	case err == nil && kf.UserSeed == nil:
		return api.DeviceJoinResult{}, errorf(api.KindInvalid, "%s is a linked device already", home)
	case err == nil:
	case errors.Is(err, fs.ErrNotExist):
	default:
		return api.DeviceJoinResult{}, fmt.Errorf("identity file %s: damaged", path)
	}
	dev, err := crdt.SecretKeyFromSeed(kf.DeviceSeed)
	if err != nil {
		if dev, err = crdt.GenerateKey(rand.Reader); err != nil {
			return api.DeviceJoinResult{}, err
		}
	}
	kem, err := e2ee.KEMSecretKeyFromSeed(kf.KEMSeed)
	if err != nil {
		if kem, err = e2ee.GenerateKEMKey(rand.Reader); err != nil {
			return api.DeviceJoinResult{}, err
		}
	}
	rec, err := e2ee.SignKEMRecord(dev, kem.Public(), 0)
	if err != nil {
		return api.DeviceJoinResult{}, err
	}
	recRaw, err := rec.Marshal()
	if err != nil {
		return api.DeviceJoinResult{}, err
	}
	sk, err := crypto.UnmarshalEd25519PrivateKey(append(dev.Seed(), pubBytes(dev.Public())...))
	if err != nil {
		return api.DeviceJoinResult{}, fmt.Errorf("device key as peer key: %w", err)
	}
	h, err := libp2p.New(libp2p.Identity(sk), libp2p.NoListenAddrs)
	if err != nil {
		return api.DeviceJoinResult{}, fmt.Errorf("start libp2p: %w", err)
	}
	defer h.Close()
	res, err := p2p.LinkDevice(ctx, h, code, dev, recRaw)
	if err != nil {
		return api.DeviceJoinResult{}, &api.Error{Kind: api.KindPermission, Msg: "link: " + linkText(err), Err: err}
	}
	out := keyFile{DeviceSeed: dev.Seed(), Cert: res.Cert, KEMSeed: kem.Seed(), User: res.User[:]}
	if err := writeJSON(path, out, 0o600); err != nil {
		return api.DeviceJoinResult{}, err
	}
	st := linkState{Rooms: []string{}, Peers: res.Peers}
	for _, r := range res.Rooms {
		st.Rooms = append(st.Rooms, r.String())
	}
	if err := writeJSON(filepath.Join(home, linkFile), st, 0o600); err != nil {
		return api.DeviceJoinResult{}, err
	}
	pb, err := LoadPeerBook(filepath.Join(home, peersFile))
	if err != nil {
		return api.DeviceJoinResult{}, err
	}
	for _, a := range res.Peers {
		if err := pb.Add(a); err != nil {
			return api.DeviceJoinResult{}, err
		}
	}
	return api.DeviceJoinResult{User: res.User.String(), Device: dev.Public().String(), Rooms: st.Rooms}, nil
}

// serveDevices finishes a link: it follows the rooms link.json lists and
// removes each once this device is announced in it. Its failures are
// logged: they never stop the node.
func (n *Node) serveDevices(ctx context.Context) error {
	path := filepath.Join(n.cfg.Home, linkFile)
	var st linkState
	if err := readJSON(path, &st); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			n.log.Warn("linked device: cannot read "+linkFile, "err", err)
		}
		return nil
	}
	for _, a := range st.Peers {
		if _, err := n.connect(ctx, n.host, a); err != nil {
			n.log.Info("linked device: peer not reachable yet", "addr", a, "err", err)
		}
	}
	var ids []crdt.RoomID
	for _, s := range st.Rooms {
		id, err := crdt.ParseID(s)
		if err != nil {
			n.log.Warn("linked device: not a room ID in "+linkFile, "room", s)
			continue
		}
		ids = append(ids, id)
	}
	err := followLinked(ctx, n.engine, ids, 500*time.Millisecond, func(r crdt.RoomID) {
		st.Rooms = slices.DeleteFunc(st.Rooms, func(s string) bool { return s == r.String() })
		if err := writeJSON(path, st, 0o600); err != nil {
			n.log.Warn("update link file", "err", err)
		}
	})
	if err != nil && ctx.Err() == nil {
		n.log.Warn("linked device: following the user's rooms", "err", err)
	}
	if len(st.Rooms) == 0 {
		os.Remove(path)
	}
	return nil
}
