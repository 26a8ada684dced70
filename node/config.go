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
}

// DefaultAPI is where the API listens unless told otherwise.
const DefaultAPI = "127.0.0.1:4080"

// DefaultHome is $PARLEY_HOME, else $XDG_DATA_HOME/parley, else ~/.local/share/parley.
func DefaultHome() string {
	if h := os.Getenv("PARLEY_HOME"); h != "" {
		return h
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "parley")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(".", ".parley")
	}
	return filepath.Join(home, ".local", "share", "parley")
}

// Files in a node's home.
const (
	identityFile = "identity.json" // secret keys, 0600
	peersFile    = "peers.json"
	prefsFile    = "prefs.json"
	storeDir     = "store"
)

// keyFile is the on-disk form of a node's identity. It is only ever written
// with mode 0600 and never logged.
type keyFile struct {
	UserSeed   []byte `json:"user_seed"`
	DeviceSeed []byte `json:"device_seed"`
	Cert       []byte `json:"cert"`
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
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, false, fmt.Errorf("create home: %w", err)
	}
	path := filepath.Join(home, identityFile)
	b, err := os.ReadFile(path)
	if err == nil {
		id, err := parseIdentity(b)
		if err != nil {
			return nil, false, fmt.Errorf("identity file %s: %w", path, err)
		}
		return id, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("read identity: %w", err)
	}
	master, err := crdt.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, err
	}
	id, err := crdt.NewIdentity(master, rand.Reader)
	if err != nil {
		return nil, false, err
	}
	kf := keyFile{UserSeed: master.Seed(), DeviceSeed: id.Device.Seed(), Cert: id.Cert}
	if err := writeJSON(path, kf, 0o600); err != nil {
		return nil, false, err
	}
	return id, true, nil
}

func parseIdentity(b []byte) (*crdt.Identity, error) {
	var kf keyFile
	if err := json.Unmarshal(b, &kf); err != nil {
		return nil, errors.New("damaged")
	}
	master, err := crdt.SecretKeyFromSeed(kf.UserSeed)
	if err != nil {
		return nil, errors.New("bad user key")
	}
	dev, err := crdt.SecretKeyFromSeed(kf.DeviceSeed)
	if err != nil {
		return nil, errors.New("bad device key")
	}
	id := &crdt.Identity{User: master.Public(), Device: dev, Cert: kf.Cert}
	if !crdt.CheckDeviceCert(id.User, dev.Public(), id.Cert) {
		return nil, errors.New("device certificate does not match")
	}
	return id, nil
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
