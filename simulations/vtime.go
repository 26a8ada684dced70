package simulations

import (
	"errors"
	"flag"
	"io"
	"os"
	"reflect"
	"runtime/debug"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// Virtual time.
//
// testing/synctest is the only way to get Go's fake clock ("bubbles"), and
// synctest.Test needs a *testing.T. Outside `go test` (the `parley sim`
// command) there is no T, so runVirtual starts the testing package's own
// runner in-process with testing.MainStart and a minimal testDeps, runs one
// internal test, and calls synctest.Test from it. testing.MainStart is
// exported but documented as "not subject to the Go 1 compatibility
// document", so this file is the one place to fix if a Go release changes
// it. Inside `go test`, callers pass their *testing.T instead (RunOptions.T)
// and no runner is nested.

var vtMu sync.Mutex

// runVirtual runs f in a synctest bubble. It must not be called from a test
// binary (use synctest.Test with the test's T there).
// simMemoryLimit is the soft heap limit of a simulation run from the command.
const simMemoryLimit = 6 << 30

func runVirtual(f func()) (err error) {
	vtMu.Lock()
	defer vtMu.Unlock()
	if testing.Testing() {
		return errors.New("simulations: virtual time inside a test binary needs RunOptions.T")
	}
	// Thousands of nodes in one heap: unless the user set GOMEMLIMIT, let
	// the collector work harder instead of doubling the heap (GOGC=100
	// alone peaks near twice the live heap).
	if os.Getenv("GOMEMLIMIT") == "" {
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(simMemoryLimit))
	}
	var panicked any
	ran := false
	test := testing.InternalTest{Name: "ParleySim", F: func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			defer func() {
				if r := recover(); r != nil {
					panicked = r
				}
			}()
			ran = true
			f()
		})
	}}
	m := testing.MainStart(simDeps{}, []testing.InternalTest{test}, nil, nil, nil)
	// The testing runner parses the global flag set and prints PASS/FAIL on
	// os.Stdout; keep both away from the command's own arguments and output.
	if !flag.Parsed() {
		_ = flag.CommandLine.Parse(nil)
	}
	saved := os.Stdout
	if devnull, derr := os.OpenFile(os.DevNull, os.O_WRONLY, 0); derr == nil {
		os.Stdout = devnull
		defer func() { os.Stdout = saved; devnull.Close() }()
	}
	code := m.Run()
	if panicked != nil {
		panic(panicked)
	}
	if !ran {
		return errors.New("simulations: the virtual-time runner did not run")
	}
	if code != 0 {
		return errors.New("simulations: the virtual-time bubble failed (a goroutine deadlock or leak inside the simulation)")
	}
	return nil
}

// simDeps implements the testing package's unexported testDeps interface
// with the least that testing.M.Run needs.
type simDeps struct{}

type corpusEntry = struct {
	Parent     string
	Path       string
	Data       []byte
	Values     []any
	Generation int
	IsSeed     bool
}

func (simDeps) ImportPath() string                          { return "github.com/parley-p2p/parley/simulations" }
func (simDeps) ModulePath() string                          { return "github.com/parley-p2p/parley" }
func (simDeps) MatchString(pat, str string) (bool, error)   { return true, nil }
func (simDeps) SetPanicOnExit0(bool)                        {}
func (simDeps) StartCPUProfile(io.Writer) error             { return nil }
func (simDeps) StopCPUProfile()                             {}
func (simDeps) StartTestLog(io.Writer)                      {}
func (simDeps) StopTestLog() error                          { return nil }
func (simDeps) WriteProfileTo(string, io.Writer, int) error { return nil }
func (simDeps) CoordinateFuzzing(time.Duration, int64, time.Duration, int64, int, []corpusEntry, []reflect.Type, string, string) error {
	return errors.New("no fuzzing")
}
func (simDeps) RunFuzzWorker(func(corpusEntry) error) error { return errors.New("no fuzzing") }
func (simDeps) ReadCorpus(string, []reflect.Type) ([]corpusEntry, error) {
	return nil, nil
}
func (simDeps) CheckCorpus([]any, []reflect.Type) error { return nil }
func (simDeps) ResetCoverage()                          {}
func (simDeps) SnapshotCoverage()                       {}
func (simDeps) InitRuntimeCoverage() (string, func(string, string) (string, error), func() float64) {
	return "", nil, nil
}

// The wall clock inside a bubble, where time.Now is virtual: a goroutine
// started outside the bubble answers on channels made outside it. Run
// starts it for the length of a simulation (startWall) and stops it after,
// so that importing this package or running another command starts
// nothing; outside a run, wallNow is time.Now.
var wall struct {
	sync.Mutex
	users int
	req   chan struct{}
	resp  chan time.Time
}

// startWall starts the wall-clock server unless it runs; stop ends it once
// every run that started it has stopped. Call it outside any bubble.
func startWall() (stop func()) {
	wall.Lock()
	defer wall.Unlock()
	if wall.users == 0 {
		req, resp := make(chan struct{}), make(chan time.Time)
		wall.req, wall.resp = req, resp
		go func() {
			for range req {
				resp <- time.Now()
			}
		}()
	}
	wall.users++
	return func() {
		wall.Lock()
		defer wall.Unlock()
		if wall.users--; wall.users == 0 {
			close(wall.req)
			wall.req, wall.resp = nil, nil
		}
	}
}

// wallSince is the wall-clock time elapsed since t (a wallNow reading).
func wallSince(t time.Time) time.Duration { return wallNow().Sub(t) }

// wallNow is the wall clock, also inside a bubble (for progress output only).
func wallNow() time.Time {
	wall.Lock()
	req, resp := wall.req, wall.resp
	wall.Unlock()
	if req == nil {
		return time.Now()
	}
	req <- struct{}{}
	return <-resp
}
