package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/api"
)

// TestRoomLimitsAgainstFakeDaemon: 'parley room limits ROOM' reads (a
// request with no limit), the flags given are sent and only they, 0 is
// sent (it lifts a limit), the answer is shown for people and as JSON,
// and a malformed number is a usage error that sends nothing.
func TestRoomLimitsAgainstFakeDaemon(t *testing.T) {
	f := startFake(t, map[string]string{
		api.EpRoomLimits.Method: `{"room":"` + validID + `","messages":30,"bytes":0,"join_work":20,"event":"ev-limits"}`,
	})
	sent := func() api.RoomLimitsReq {
		t.Helper()
		var req api.RoomLimitsReq
		if err := json.Unmarshal([]byte(f.request(api.EpRoomLimits.Method)), &req); err != nil {
			t.Fatal(err)
		}
		return req
	}
	r := runCLI(t, "", "room", "limits", validID, "--home", f.home)
	if r.code != 0 {
		t.Fatalf("room limits: %+v", r)
	}
	if req := sent(); req.Messages != nil || req.Bytes != nil || req.JoinWork != nil || req.Room != validID {
		t.Fatalf("a read sent %+v", req)
	}
	for _, want := range []string{"30 events per member device per minute", "no limit", "20 bits", "updated " + validID + " (event ev-limits)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}

	r = runCLI(t, "", "room", "limits", validID, "--messages", "30", "--bytes", "0", "--home", f.home, "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"join_work":20`) {
		t.Fatalf("room limits --json: %+v", r)
	}
	if req := sent(); req.Messages == nil || *req.Messages != 30 || req.Bytes == nil || *req.Bytes != 0 || req.JoinWork != nil {
		t.Fatalf("room limits --messages 30 --bytes 0 sent %+v", req)
	}

	f.mu.Lock()
	f.requests = map[string]string{}
	f.mu.Unlock()
	runCLI(t, "", "room", "limits", validID, "--bytes", "lots", "--home", f.home).usageError(t, "lots")
	runCLI(t, "", "room", "limits", "--home", f.home).usageError(t, "")
	if f.request(api.EpRoomLimits.Method) != "" {
		t.Fatal("a usage error reached the daemon")
	}
}
