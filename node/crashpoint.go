package node

import (
	"os"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms"
)

// CrashAfterRotateEnv names a crash point for tests only (e2e, C29 of
// research/e2ee.md §8 as the README lists it): when a daemon's environment
// sets it to "1", the daemon kills itself with SIGKILL right after the first
// `rotate` event it authors is stored and handed to gossip, before anything
// is sealed under the new epoch. A restarted daemon must then still hold the
// epoch secret, which newRotation (keys.go) persists before the event
// exists. Never set it otherwise.
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
