package main

import (
	"strings"
	"testing"

	"github.com/parley-p2p/parley/api"
)

// TestRoomInfoNoSyncPeer: room info says so when events are missing and no
// connected peer serves the room's sync (issue 17 item 10), and only then.
func TestRoomInfoNoSyncPeer(t *testing.T) {
	const warning = "no peer that serves this room is reachable"
	for _, c := range []struct {
		sync string
		warn bool
	}{
		{`{"events":3,"heads":[],"missing":2,"pending":1,"sync_peers":0}`, true},
		{`{"events":3,"heads":[],"missing":2,"pending":1,"sync_peers":1}`, false},
		{`{"events":3,"heads":[],"missing":0,"pending":0,"sync_peers":0}`, false},
	} {
		f := startFake(t, map[string]string{api.EpRoomInfo.Method: `{"room":"` + validID + `","members":[],"sync":` + c.sync + `}`})
		r := runCLI(t, "", "--home", f.home, "room", "info", validID)
		if r.code != 0 || !strings.Contains(r.stdout, "sync peers") || strings.Contains(r.stdout, warning) != c.warn {
			t.Errorf("sync %s: exit %d, stdout %q, want the warning: %v", c.sync, r.code, r.stdout, c.warn)
		}
	}
}
