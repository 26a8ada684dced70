package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/api"
)

// TestSearchAgainstFakeDaemon: parley search sends the room and query and
// prints each hit as a history line, with its room's name when all rooms
// were searched, and says when there are more.
func TestSearchAgainstFakeDaemon(t *testing.T) {
	f := startFake(t, map[string]string{
		api.EpSearch.Method: `{"hits": [{"room": "` + validID + `", "room_name": "Garden", "ref": "abc123",
			"event": {"id": "e1", "sender": "alice-user-id-0123456789", "type": "message", "ts": 1700000000000, "body": "the needle", "decrypted": true}}],
			"more": true, "names": {"alice-user-id-0123456789": "Alice"}}`,
	})
	r := runCLI(t, "", "--home", f.home, "search", "needle hay", "--limit", "7")
	if r.code != 0 || !strings.Contains(r.stdout, "Garden  ") || !strings.Contains(r.stdout, "abc123") ||
		!strings.Contains(r.stdout, "Alice: the needle") || !strings.Contains(r.stdout, "more messages match") {
		t.Fatalf("search: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	var req api.SearchReq
	if err := json.Unmarshal([]byte(f.request(api.EpSearch.Method)), &req); err != nil || req.Room != "" || req.Query != "needle hay" || req.Limit != 7 {
		t.Fatalf("search request %q", f.request(api.EpSearch.Method))
	}
	r = runCLI(t, "", "--home", f.home, "search", validID, "needle")
	if r.code != 0 || strings.Contains(r.stdout, "Garden  ") || !strings.Contains(r.stdout, "Alice: the needle") {
		t.Fatalf("search in a room: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	if err := json.Unmarshal([]byte(f.request(api.EpSearch.Method)), &req); err != nil || req.Room != validID || req.Query != "needle" {
		t.Fatalf("search request %q", f.request(api.EpSearch.Method))
	}
}
