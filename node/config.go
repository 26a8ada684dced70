package node

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms/e2ee"
)

// Config is how a daemon is started. It holds no live resources.
type Config struct {
	Home      string
	Listen    []string // multiaddrs; default TCP and QUIC on all interfaces, port 4001 or a free one
	API       string   // default 127.0.0.1:4080
	Bootstrap []string // multiaddrs dialled at start and kept connected
	NoMDNS    bool
	NoDHT     bool
	Logger    *slog.Logger
	// Metrics, when set, is a HOST:PORT where a second listener serves
	// the Prometheus metrics without a token (they are always on the API
	// at api.MetricsPath, behind it).
	Metrics string
	// GossipTrace, when set, is a file the node appends a line to for
	// each copy of a gossiped event it receives and each event it
	// publishes (docs/operators.md, "Gossip path trace"): a diagnostic,
	// with which the simulator's netns backend times every hop.
	GossipTrace string
	// Reachability (node/reach.go): Relay offers circuit relay v2
	// (RelayRooms or RelayOpen; RelayOff by default), NoPortMap turns off
	// UPnP/NAT-PMP port mapping, Reachability overrides AutoNAT's verdict
	// (ReachPublic, ReachPrivate; ReachAuto by default). RelayBytes is
	// the relay's byte budget of one circuit, each way (0: 1 MiB).
	Relay        string
	RelayBytes   int64
	NoPortMap    bool
	Reachability string
	// NoPeerExchange turns off the exchange of members' signed peer
	// records (node/p2p/peerrecords.go): the node neither asks for nor serves
	// them, so it meets only the peers it is told of.
	NoPeerExchange bool
	// Calls (node/stun.go, node/turn_relay.go): STUN is the UDP HOST:PORT
	// that answers STUN (default: libp2p's listen address, port
	// DefaultSTUNPort or a free one), NoSTUN turns it off, TURN runs a
	// TURN relay on it for members of shared rooms.
	STUN   string
	NoSTUN bool
	TURN   TURNConfig
}

// DefaultAPI is where the API listens unless told otherwise.
const DefaultAPI = "127.0.0.1:4080"

// Files in a node's home.
const (
	identityFile = "identity.json" // secret keys, 0600
	peersFile    = "peers.json"
	prefsFile    = "prefs.json"
	storeDir     = "store"
	lockFile     = "lock" // held by the running daemon (lock_unix.go)
)

// keyFile is the on-disk form of a node's identity. It is only ever written
// with mode 0600 and never logged.
type keyFile struct {
	UserSeed   []byte `json:"user_seed"`
	DeviceSeed []byte `json:"device_seed"`
	Cert       []byte `json:"cert"`
	// KEMSeed is the device's X-Wing KEM key (end-to-end encryption). An
	// identity written before it existed gets one on open and is rewritten.
	KEMSeed []byte `json:"kem_seed,omitempty"`
	// User is the user ID of a device linked by another device (parley
	// device join): such a device holds no master key (UserSeed is empty)
	// and cannot link others.
	User []byte `json:"user,omitempty"`
}

// InitResult answers Init.
type InitResult struct {
	User    string `json:"user"`
	Device  string `json:"device"`
	Created bool   `json:"created"`
}

// Init creates the home's identity (user master key, device key and its
// certificate) unless one exists, in which case it changes nothing.
func Init(home, name string) (InitResult, error) {
	id, created, err := loadOrCreateIdentity(home)
	if err != nil {
		return InitResult{}, err
	}
	if created && name != "" {
		p, err := loadPrefs(filepath.Join(home, prefsFile))
		if err != nil {
			return InitResult{}, err
		}
		p.DisplayName = name
		if err := p.save(); err != nil {
			return InitResult{}, err
		}
	}
	return InitResult{User: id.User.String(), Device: id.Device.Public().String(), Created: created}, nil
}

func loadOrCreateIdentity(home string) (*crdt.Identity, bool, error) {
	id, _, created, err := loadOrCreateKeys(home)
	return id, created, err
}

// loadOrCreateKeys reads the home's identity and KEM key, creating them
// (mode 0600) when absent.
func loadOrCreateKeys(home string) (*crdt.Identity, *e2ee.KEMSecretKey, bool, error) {
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, nil, false, fmt.Errorf("create home: %w", err)
	}
	path := filepath.Join(home, identityFile)
	b, err := os.ReadFile(path)
	if err == nil {
		kf, id, err := parseIdentity(b)
		if err != nil {
			return nil, nil, false, fmt.Errorf("identity file %s: %w", path, err)
		}
		if kf.KEMSeed == nil {
			k, err := e2ee.GenerateKEMKey(rand.Reader)
			if err != nil {
				return nil, nil, false, err
			}
			kf.KEMSeed = k.Seed()
			if err := writeJSON(path, kf, 0o600); err != nil {
				return nil, nil, false, err
			}
		}
		kem, err := e2ee.KEMSecretKeyFromSeed(kf.KEMSeed)
		if err != nil {
			return nil, nil, false, fmt.Errorf("identity file %s: bad kem key", path)
		}
		return id, kem, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, false, fmt.Errorf("read identity: %w", err)
	}
	master, err := crdt.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, false, err
	}
	id, err := crdt.NewIdentity(master, rand.Reader)
	if err != nil {
		return nil, nil, false, err
	}
	kem, err := e2ee.GenerateKEMKey(rand.Reader)
	if err != nil {
		return nil, nil, false, err
	}
	kf := keyFile{UserSeed: master.Seed(), DeviceSeed: id.Device.Seed(), Cert: id.Cert, KEMSeed: kem.Seed()}
	if err := writeJSON(path, kf, 0o600); err != nil {
		return nil, nil, false, err
	}
	return id, kem, true, nil
}

func parseIdentity(b []byte) (*keyFile, *crdt.Identity, error) {
	var kf keyFile
	if err := json.Unmarshal(b, &kf); err != nil {
		return nil, nil, errors.New("damaged")
	}
	var user crdt.UserID
	if kf.UserSeed == nil && kf.User != nil { // a linked device: no master key
		u, err := crdt.KeyFromBytes(kf.User)
		if err != nil {
			return nil, nil, errors.New("bad user ID")
		}
		user = u
	} else {
		master, err := crdt.SecretKeyFromSeed(kf.UserSeed)
		if err != nil {
			return nil, nil, errors.New("bad user key")
		}
		user = master.Public()
	}
	dev, err := crdt.SecretKeyFromSeed(kf.DeviceSeed)
	if err != nil {
		return nil, nil, errors.New("bad device key")
	}
	id := &crdt.Identity{User: user, Device: dev, Cert: kf.Cert}
	if !crdt.CheckDeviceCert(id.User, dev.Public(), id.Cert) {
		return nil, nil, errors.New("device certificate does not match")
	}
	return &kf, id, nil
}

// writeJSON writes v atomically (temp file, fsync, rename) with mode perm.
func writeJSON(path string, v any, perm fs.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
