package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompletionBash: the bash script is valid (bash -n), names every
// command and, run by bash, completes groups, subcommands and flags.
func TestCompletionBash(t *testing.T) {
	r := runCLI(t, "", "completion", "bash")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, c := range commands {
		if !strings.Contains(r.stdout, `"`+c.name+`")`) {
			t.Errorf("no case for %q", c.name)
		}
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash on this machine")
	}
	script := filepath.Join(t.TempDir(), "parley.bash")
	if err := os.WriteFile(script, []byte(r.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bash, "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
	for _, tc := range []struct{ line, want string }{
		{"parley ro", "room"},
		{"parley room cr", "create"},
		{"parley --home /x room create --na", "--name"},
		{"parley daemon --log-f", "--log-format"},
		{"parley daemon --met", "--metrics"},
		{"parley media get x -", "-o"},
		{"parley sim run x --no", "--nodes"},
		{"parley completion z", "zsh"},
		{"parley invites po", "policy"},
	} {
		words := strings.Fields(tc.line)
		if strings.HasSuffix(tc.line, " ") {
			words = append(words, "")
		}
		probe := `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _parley; printf '%s\n' "${COMPREPLY[@]}"`
		out, err := exec.Command(bash, append([]string{"-c", probe, "probe", script}, words...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", tc.line, err, out)
		}
		if got := strings.Fields(string(out)); !containsWord(got, tc.want) {
			t.Errorf("%q completes to %q, want %q among them", tc.line, got, tc.want)
		}
	}
}

func containsWord(ws []string, w string) bool {
	for _, x := range ws {
		if x == w {
			return true
		}
	}
	return false
}

// TestCompletionShells: zsh and fish scripts name every command and flag
// of the daemon, pass their shell's syntax check where it is installed,
// and an unknown shell is a usage error.
func TestCompletionShells(t *testing.T) {
	for _, sh := range []string{"zsh", "fish"} {
		r := runCLI(t, "", "completion", sh)
		if r.code != 0 {
			t.Fatalf("%s: exit %d: %s", sh, r.code, r.stderr)
		}
		for _, w := range []string{"daemon", "send-file", "create", "log-format", "metrics", "completion"} {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("%s script lacks %q", sh, w)
			}
		}
		bin, err := exec.LookPath(sh)
		if err != nil {
			t.Logf("%s not installed: syntax not checked", sh)
			continue
		}
		script := filepath.Join(t.TempDir(), "parley."+sh)
		os.WriteFile(script, []byte(r.stdout), 0o600)
		if out, err := exec.Command(bin, "-n", script).CombinedOutput(); err != nil {
			t.Errorf("%s -n: %v\n%s", sh, err, out)
		}
	}
	runCLI(t, "", "completion", "tcsh").usageError(t, `unknown shell "tcsh"`)
	runCLI(t, "", "completion").usageError(t, "missing argument")
}
