// Package e2e drives real parley processes through the command line, on
// loopback only: daemons with their own homes (--no-mdns --no-dht, random
// ports), crashed with SIGKILL, stopped with SIGTERM and restarted.
//
// Nothing here waits with a bare sleep: every wait polls a condition until a
// deadline (see eventually).
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parley-p2p/parley/api"
)

// parleyBin is the binary under test, built once by TestMain.
var parleyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "parley-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	parleyBin = filepath.Join(dir, "parley")
	args := []string{"build", "-o", parleyBin}
	if os.Getenv("PARLEY_E2E_RACE") != "" {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "github.com/parley-p2p/parley/cmd/parley")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: build parley: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	readyTimeout    = 30 * time.Second // a daemon writes its api file
	cliTimeout      = 60 * time.Second // one CLI command
	convergeTimeout = 60 * time.Second // all nodes hold the same history
)

// syncBuffer collects a process's output while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// daemon is one parley node: a home folder and, while running, its process.
type daemon struct {
	t      *testing.T
	name   string
	home   string
	listen string // the TCP address, kept across restarts so peers can redial it
	log    syncBuffer
	runs   int
	env    []string // added to the environment of the next start
	args   []string // added to the command line of the next start

	cmd     *exec.Cmd
	exited  chan struct{}
	exitErr error

	peerID string
	addr   string // dialable multiaddr ending in /p2p/PEERID
	user   string
}

// startDaemon starts a node with a fresh home and waits until it is ready.
func startDaemon(t *testing.T, name string) *daemon {
	t.Helper()
	d := newDaemon(t, name, t.TempDir())
	d.start()
	return d
}

// newDaemon prepares a node on home; start runs it. At the end of the test
// it is killed if still running, and its output is logged if the test failed.
func newDaemon(t *testing.T, name, home string) *daemon {
	d := &daemon{t: t, name: name, home: home, listen: "/ip4/127.0.0.1/tcp/0"}
	t.Cleanup(func() {
		if d.running() {
			d.cmd.Process.Signal(syscall.SIGKILL)
			<-d.exited
		}
		if strings.Contains(d.log.String(), "WARNING: DATA RACE") {
			t.Errorf("daemon %s: the race detector reported a data race (log below)", d.name)
		}
		if t.Failed() {
			t.Logf("---- daemon %s (home %s), stdout and stderr of %d run(s):\n%s", d.name, d.home, d.runs, d.log.String())
		}
	})
	return d
}

// start runs the daemon on its home (again) and waits until it answers.
func (d *daemon) start() {
	d.t.Helper()
	if d.running() {
		d.t.Fatalf("%s: start while running", d.name)
	}
	stale, _ := os.ReadFile(filepath.Join(d.home, api.InfoFile)) // left by a SIGKILL
	d.runs++
	fmt.Fprintf(&d.log, "==== run %d: parley daemon --listen %s\n", d.runs, d.listen)
	d.cmd = exec.Command(parleyBin, append([]string{"daemon", "--home", d.home,
		"--no-mdns", "--no-dht", "--listen", d.listen, "--api", "127.0.0.1:0", "--log-level", logLevel()}, d.args...)...)
	d.cmd.Stdout, d.cmd.Stderr = &d.log, &d.log
	if len(d.env) > 0 {
		d.cmd.Env = append(os.Environ(), d.env...)
	}
	if err := d.cmd.Start(); err != nil {
		d.t.Fatalf("%s: start daemon: %v", d.name, err)
	}
	d.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		err := cmd.Wait()
		d.exitErr = err
		close(exited)
	}(d.cmd, d.exited)

	deadline := time.Now().Add(readyTimeout)
	for {
		if !d.running() {
			d.t.Fatalf("%s: daemon exited before it was ready: %v", d.name, d.exitErr)
		}
		b, err := os.ReadFile(filepath.Join(d.home, api.InfoFile))
		if err == nil && !bytes.Equal(b, stale) && json.Valid(b) {
			var id api.IDResp
			if d.try(&id, "id") == nil {
				d.setID(id)
				return
			}
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("%s: no fresh api file and no answer to 'parley id' within %v", d.name, readyTimeout)
		}
		time.Sleep(50 * time.Millisecond) // polling the api file, with the deadline above
	}
}

// logLevel is the daemons' log level: PARLEY_E2E_LOG, else info.
func logLevel() string {
	if l := os.Getenv("PARLEY_E2E_LOG"); l != "" {
		return l
	}
	return "info"
}

func (d *daemon) setID(id api.IDResp) {
	d.peerID, d.user = id.PeerID, id.User
	for _, a := range id.Addrs {
		if strings.HasPrefix(a, "/ip4/127.0.0.1/tcp/") {
			d.addr = a
			break
		}
	}
	if d.addr == "" {
		d.t.Fatalf("%s: no /ip4/127.0.0.1/tcp address in %q", d.name, id.Addrs)
	}
	if !strings.Contains(d.addr, "/p2p/") {
		d.addr += "/p2p/" + d.peerID
	}
	if d.listen == "/ip4/127.0.0.1/tcp/0" {
		d.listen, _, _ = strings.Cut(d.addr, "/p2p/")
	}
}

func (d *daemon) running() bool {
	if d.exited == nil {
		return false
	}
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// kill crashes the daemon with SIGKILL.
func (d *daemon) kill() {
	d.t.Helper()
	d.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		d.t.Fatalf("%s: still running 10s after SIGKILL", d.name)
	}
}

// stop shuts the daemon down with SIGTERM and checks that it exited cleanly.
func (d *daemon) stop() {
	d.t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(15 * time.Second):
		d.t.Errorf("%s: still running 15s after SIGTERM; killing it", d.name)
		d.kill()
		return
	}
	if d.exitErr != nil {
		d.t.Errorf("%s: exit after SIGTERM: %v (want status 0)", d.name, d.exitErr)
	}
	if _, err := os.Stat(filepath.Join(d.home, api.InfoFile)); !errors.Is(err, os.ErrNotExist) {
		d.t.Errorf("%s: api file still present after a clean exit (stat: %v)", d.name, err)
	}
}

// cliResult is the outcome of one CLI command.
type cliResult struct {
	args           []string
	code           int
	stdout, stderr string
}

func (r cliResult) String() string {
	return fmt.Sprintf("parley %s: exit %d\nstdout: %q\nstderr: %q", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// runCLI runs parley with args and stdin against home.
func runCLI(home, stdin string, args ...string) cliResult {
	args = append(append([]string{}, args...), "--home", home)
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, parleyBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := cliResult{args: args, stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		r.code = -1
		r.stderr += err.Error()
	}
	if ctx.Err() != nil {
		r.stderr += fmt.Sprintf(" [killed after %v]", cliTimeout)
	}
	return r
}

func (d *daemon) run(stdin string, args ...string) cliResult { return runCLI(d.home, stdin, args...) }

// try runs a command with --json and decodes its output into v (if not nil).
// It is safe to call from any goroutine.
func (d *daemon) try(v any, args ...string) error {
	r := d.run("", append(args, "--json")...)
	if r.code != 0 {
		return fmt.Errorf("%s: %v", d.name, r)
	}
	if v == nil {
		return nil
	}
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		return fmt.Errorf("%s: decode output of %v: %v", d.name, r, err)
	}
	return nil
}

// must is try, failing the test on error. Call it from the test goroutine.
func (d *daemon) must(v any, args ...string) {
	d.t.Helper()
	if err := d.try(v, args...); err != nil {
		d.t.Fatal(err)
	}
}

// history fetches a room's whole timeline, page by page, oldest first.
func (d *daemon) history(room string) ([]api.TimelineEvent, error) {
	const page = 1000
	var all []api.TimelineEvent
	seen := map[string]bool{}
	before := ""
	for {
		args := []string{"history", room, "--limit", fmt.Sprint(page)}
		if before != "" {
			args = append(args, "--before", before)
		}
		var h api.HistoryResp
		if err := d.try(&h, args...); err != nil {
			return nil, err
		}
		for _, e := range h.Events {
			if seen[e.ID] {
				return nil, fmt.Errorf("%s: history --before %s returned %s again", d.name, before, e.ID)
			}
			seen[e.ID] = true
		}
		all = append(h.Events, all...)
		if len(h.Events) < page {
			return all, nil
		}
		before = h.Events[0].ID
	}
}

// eventually polls cond until it returns nil or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond) // poll interval, bounded by the deadline
	}
}

// parallel runs fn(i) for i in [0, n) with at most width at a time and
// returns the errors.
func parallel(n, width int, fn func(i int) error) []error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, width)
	)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(i); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs
}
