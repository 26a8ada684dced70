package main

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	stamped := &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "true"}}}
	if v := versionOf(stamped, true); v.Version != "v1.2.3" || v.Commit != "abc123" || !v.Modified {
		t.Errorf("stamped build: %+v", v)
	}
	// A build with -buildvcs=false from a work tree.
	if v := versionOf(&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true); v.Version != "devel" || v.Commit != "unknown" {
		t.Errorf("unstamped build: %+v", v)
	}
	if v := versionOf(nil, false); v.Version != "devel" || v.Commit != "unknown" {
		t.Errorf("no build info: %+v", v)
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		r := runCLI(t, "", args...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "parley ") || !strings.Contains(r.stdout, "commit ") {
			t.Errorf("%v: exit %d stdout %q stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
	if r := runCLI(t, "", "version", "--json"); r.code != 0 || !strings.Contains(r.stdout, `"commit":`) {
		t.Errorf("version --json: %q", r.stdout)
	}
	// An unknown command gets a hint, not the whole usage.
	if r := runCLI(t, "", "histroy"); r.code != 2 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "see: parley help") {
		t.Errorf("unknown command: exit %d stderr %q", r.code, r.stderr)
	}
	if r := runCLI(t, "", "dev"); !strings.Contains(r.stderr, "did you mean: device") {
		t.Errorf("unknown command prefix: stderr %q", r.stderr)
	}
	// -o is shown as -o.
	if r := runCLI(t, "", "help", "export"); !strings.Contains(r.stdout, "  -o FILE") {
		t.Errorf("help export:\n%s", r.stdout)
	}
}
