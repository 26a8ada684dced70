package node

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// An identity file written before end-to-end encryption gets a KEM key on
// open and is rewritten (mode 0600); the key is stable afterwards.
func TestIdentityGainsKEMKey(t *testing.T) {
	home := t.TempDir()
	id, kem, created, err := loadOrCreateKeys(home)
	if err != nil || !created || kem == nil {
		t.Fatalf("create: %v %v", created, err)
	}
	path := filepath.Join(home, identityFile)
	var kf keyFile
	b, _ := os.ReadFile(path)
	if err := json.Unmarshal(b, &kf); err != nil || len(kf.KEMSeed) != 32 {
		t.Fatalf("new identity file has no kem seed: %v", err)
	}
	kf.KEMSeed = nil // an identity file of an older version
	if err := writeJSON(path, kf, 0o600); err != nil {
		t.Fatal(err)
	}
	id2, kem2, created, err := loadOrCreateKeys(home)
	if err != nil || created || id2.User != id.User || kem2 == nil {
		t.Fatalf("reopen: created=%v err=%v", created, err)
	}
	id3, kem3, _, err := loadOrCreateKeys(home)
	if err != nil || id3.User != id.User || !kem3.Equal(kem2) {
		t.Fatalf("the added kem key is not stable: %v", err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("identity file mode %v: %v", st.Mode().Perm(), err)
	}
}
