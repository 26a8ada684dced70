package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/api"
)

// TestArchiveAgainstFakeDaemon: export and import send absolute paths (the
// daemon's working folder is not the user's) and print the answers.
func TestArchiveAgainstFakeDaemon(t *testing.T) {
	f := startFake(t, map[string]string{
		api.EpExport.Method: `{"room":"r","events":52,"blobs":0}`,
		api.EpImport.Method: `{"room":"r","events":52,"new":7}`,
	})
	wd, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}

	r := runCLI(t, "", "export", validID, "-o", "room.car", "--home", f.home)
	if r.code != 0 || !strings.Contains(r.stdout, "exported 52 events and 0 blobs") {
		t.Fatalf("export: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	var ex api.ExportReq
	if err := json.Unmarshal([]byte(f.request(api.EpExport.Method)), &ex); err != nil {
		t.Fatal(err)
	}
	if ex != (api.ExportReq{Room: validID, Out: filepath.Join(wd, "room.car")}) {
		t.Errorf("export request %+v", ex)
	}

	r = runCLI(t, "", "import", "sub/../room.car", "--json", "--home", f.home)
	if r.code != 0 || strings.TrimSpace(r.stdout) != `{"room":"r","events":52,"new":7}` {
		t.Fatalf("import: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	var im api.ImportReq
	if err := json.Unmarshal([]byte(f.request(api.EpImport.Method)), &im); err != nil {
		t.Fatal(err)
	}
	if im.Path != filepath.Join(wd, "room.car") {
		t.Errorf("import request %+v", im)
	}

	for _, args := range [][]string{
		{"export", validID},
		{"export", "-o", "x.car"},
		{"export", "not-a-room", "-o", "x.car"},
		{"import"},
		{"import", "a.car", "b.car"},
	} {
		r := runCLI(t, "", append(args, "--home", f.home)...)
		if r.code == 0 || !strings.HasPrefix(r.stderr, "parley: ") {
			t.Errorf("%v: exit %d stderr %q, want a refusal", args, r.code, r.stderr)
		}
	}
}
