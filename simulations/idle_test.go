package simulations

import (
	"os"
	"os/exec"
	"testing"

	"go.uber.org/goleak"
)

// TestIdleStartsNothing: importing the package (as the parley binary does
// for every command) and using it short of running a simulation starts no
// goroutine; the wall clock that simulations use inside a bubble starts
// with a run and stops after it. It checks a fresh process, in which only
// the package initializers and the test runner have run.
func TestIdleStartsNothing(t *testing.T) {
	if os.Getenv("PARLEY_SIM_IDLE_CHILD") == "1" {
		opts := []goleak.Option{
			// Library workers started by package initializers of libp2p's
			// dependencies (go-log's mirror writer, opencensus' view worker),
			// not by this package.
			goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
			goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		}
		if err := goleak.Find(opts...); err != nil {
			t.Fatalf("goroutines at start: %v", err)
		}
		for _, s := range List() {
			if _, err := Load(s.Name); err != nil {
				t.Fatal(err)
			}
		}
		wallSince(wallNow())
		startWall()()
		if err := goleak.Find(opts...); err != nil {
			t.Fatalf("goroutines after listing and loading scenarios: %v", err)
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleStartsNothing$", "-test.count=1")
	cmd.Env = append(os.Environ(), "PARLEY_SIM_IDLE_CHILD=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child process: %v\n%s", err, out)
	}
}
