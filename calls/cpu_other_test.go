//go:build !unix

package calls

import (
	"testing"
	"time"
)

// cpuTime is not measured here.
func cpuTime(t *testing.T) time.Duration {
	t.Skip("no getrusage: CPU time not measured")
	return 0
}
