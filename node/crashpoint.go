package node

import (
	"os"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms"
)

// CrashAfterRotateEnv names a crash point for tests only (e2e, C29 of
// docs/design.md §5.6): when a daemon's environment sets it to "1", the
// daemon kills itself with SIGKILL right after the first `rotate` event it
// authors is handed to gossip. The driver publishes a step's events after
// the step committed them (ready.go), so by then the message the rotation
// was authored for is stored too, but its send is not acknowledged. A
// restarted daemon must still hold the epoch secret, which newRotation
// (keys.go) persists before the event exists. Never set it otherwise.
const CrashAfterRotateEnv = "PARLEY_TEST_CRASH_AFTER_ROTATE"

// crashAfterRotate reads CrashAfterRotateEnv.
func crashAfterRotate() bool { return os.Getenv(CrashAfterRotateEnv) == "1" }

// crashPoint kills this process without any cleanup if ev is a rotation.
func crashPoint(ev *crdt.Event) {
	if ev.Type != rooms.TypeRotate {
		return
	}
	if p, err := os.FindProcess(os.Getpid()); err == nil {
		p.Kill() // SIGKILL on Unix
	}
	select {} // the signal is on its way
}
