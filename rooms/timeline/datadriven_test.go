package timeline

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestScripts runs the scripts in testdata/ (regenerate outputs with
// go test -run TestScripts -rewrite). Commands:
//
//	post [hold]         one action per input line (see world.do); hold
//	                    keeps the items from the projection until deliver
//	deliver L...        adds held items
//	redact L...         redacts items (known to the projection or not)
//	read USER L         a read receipt for L
//	messages            the listed messages with their details
//	thread ROOT         the thread of ROOT
//	versions L          the versions of message L
//	ignored             items without effect, with the reason
//	converge [orders=N] [seed=S]  replays every input in N shuffled
//	                    orders and compares everything the projection answers
//
// Spec: docs/design.md §7, docs/protocol.md 5.2, issue 5 (relations with fallbacks, timeline projection).
func TestScripts(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		w := newWorld()
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			var args []string
			for _, a := range d.CmdArgs {
				args = append(args, a.Key)
			}
			switch d.Cmd {
			case "post":
				hold := d.HasArg("hold")
				for _, line := range strings.Split(d.Input, "\n") {
					if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
						w.do(t, line, hold)
					}
				}
				return "ok\n"
			case "deliver":
				w.deliver(t, args...)
				return "ok\n"
			case "redact":
				for _, l := range args {
					w.redact(t, l)
				}
				return "ok\n"
			case "read":
				w.read(t, args[0], args[1])
				return "ok\n"
			case "messages":
				return w.printMessages(w.p.Messages())
			case "thread":
				return w.printMessages(w.p.Thread(w.get(t, args[0]).item.ID))
			case "versions":
				return w.printVersions(w.p.Versions(w.get(t, args[0]).item.ID))
			case "ignored":
				return w.printIgnored(w.p.Ignored())
			case "converge":
				orders, seed := 50, uint64(1)
				d.MaybeScanArgs(t, "orders", &orders)
				d.MaybeScanArgs(t, "seed", &seed)
				if err := w.converges(orders, seed); err != nil {
					return "DIVERGED: " + err.Error() + "\n"
				}
				return fmt.Sprintf("converged over %d orders\n", orders)
			}
			t.Fatalf("unknown command %q", d.Cmd)
			return ""
		})
	})
}
