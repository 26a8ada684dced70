package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/node/p2p"
)

func TestDevicesAgainstFakeDaemon(t *testing.T) {
	f := startFake(t, map[string]string{
		api.EpVerify.Method:     `{"user":"` + validUser + `","safety_number":"11111 22222 33333 44444 55555 66666 77777 88888 99999 00000 12345 67890","emoji":["🐶","🐱","🦁","🐎","🦄","🐷","🐘"],"emoji_names":["Dog","Cat","Lion","Horse","Unicorn","Pig","Elephant"],"verified":false}`,
		api.EpDeviceList.Method: `{"user":"u","devices":[{"device":"dev-a","name":"this device","current":true,"verified":true,"rooms":["r"]}]}`,
		api.EpRoomInfo.Method:   `{"room":"r","members":[{"user":"u1","membership":"join","verified":true}],"warnings":[{"kind":"master_key_changed","user":"u2","was":"u1","message":"WARNING: u2 shows the name"}]}`,
	})
	r := runCLI(t, "", "verify", validUser, "--home", f.home)
	if r.code != 0 || !strings.Contains(r.stdout, "11111 22222 33333 44444\n") || !strings.Contains(r.stdout, "🐶") || !strings.Contains(r.stdout, "Elephant") {
		t.Fatalf("verify: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, "", "verify", validUser, "--confirm", "--home", f.home)
	var req api.VerifyReq
	if err := json.Unmarshal([]byte(f.request(api.EpVerify.Method)), &req); err != nil || !req.Confirm || req.User != validUser {
		t.Fatalf("verify --confirm request %q", f.request(api.EpVerify.Method))
	}
	runCLI(t, "", "verify", " ", "--home", f.home).failsWith(t, "malformed user ID")
	r = runCLI(t, "", "device", "list", "--home", f.home)
	if r.code != 0 || !strings.Contains(r.stdout, "dev-a") || !strings.Contains(r.stdout, "this device") {
		t.Fatalf("device list: exit %d stdout %q", r.code, r.stdout)
	}
	r = runCLI(t, "", "room", "info", validID, "--home", f.home)
	if r.code != 0 || !strings.Contains(r.stdout, "!!! WARNING: u2") || !strings.Contains(r.stdout, "VERIFIED") {
		t.Fatalf("room info: exit %d stdout %q", r.code, r.stdout)
	}
	// device join runs without a daemon: here one runs, and the code is bad.
	runCLI(t, "", "device", "join", "hello", "--home", f.home).failsWith(t, "not a link code")
	code := (&p2p.LinkCode{}).String() // never the secret
	if strings.Contains(code, "parley-link-") {
		t.Fatalf("a code's String is its text: %q", code)
	}
	runCLI(t, "", "device", "join", "--home", t.TempDir()).usageError(t, "missing argument")
	runCLI(t, "", "device", "bogus", "--home", f.home).usageError(t, "unknown command")
}
