package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"

	"github.com/parley-p2p/parley/simulations"
)

const simUsage = `usage:
  parley sim list [--json]
  parley sim run SCENARIO|FILE.yaml [--nodes N] [--seed S] [--out DIR] [--json] [--real-time]
`

// cmdSim implements "parley sim": network simulations of the real node
// code in virtual time (see simulations/README.md).
func cmdSim(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, simUsage)
		return 2
	}
	switch args[0] {
	case "list":
		fs := flag.NewFlagSet("sim list", flag.ContinueOnError)
		fs.SetOutput(stderr)
		asJSON := fs.Bool("json", false, "print JSON")
		if err := fs.Parse(args[1:]); err != nil || fs.NArg() > 0 {
			fmt.Fprint(stderr, simUsage)
			return 2
		}
		list := simulations.List()
		if *asJSON {
			b, _ := json.MarshalIndent(map[string]any{"scenarios": list}, "", "  ")
			fmt.Fprintln(stdout, string(b))
			return 0
		}
		for _, s := range list {
			fmt.Fprintf(stdout, "%-22s %s\n", s.Name, s.Description)
		}
		return 0
	case "run":
		fs := flag.NewFlagSet("sim run", flag.ContinueOnError)
		fs.SetOutput(stderr)
		nodes := fs.Int("nodes", 0, "honest nodes (default: the scenario's)")
		seed := fs.Uint64("seed", 0, "seed (default: the scenario's)")
		out := fs.String("out", "", "output directory for report.json, CSV series and SVG plots")
		asJSON := fs.Bool("json", false, "print the report as JSON")
		real := fs.Bool("real-time", false, "run on the wall clock instead of virtual time")
		var pos []string
		rest := args[1:]
		for {
			if err := fs.Parse(rest); err != nil {
				fmt.Fprint(stderr, simUsage)
				return 2
			}
			if fs.NArg() == 0 {
				break
			}
			pos = append(pos, fs.Arg(0))
			rest = fs.Args()[1:]
		}
		if len(pos) != 1 {
			fmt.Fprint(stderr, simUsage)
			return 2
		}
		sc, err := simulations.Load(pos[0])
		if err != nil {
			fmt.Fprintf(stderr, "error: %v\n", err)
			return 1
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		// Hidden: PARLEY_SIM_CPUPROFILE and PARLEY_SIM_MEMPROFILE write pprof
		// profiles of the run (for work on the simulator itself).
		if path := os.Getenv("PARLEY_SIM_CPUPROFILE"); path != "" {
			if f, err := os.Create(path); err == nil {
				if pprof.StartCPUProfile(f) == nil {
					defer func() { pprof.StopCPUProfile(); f.Close() }()
				}
			}
		}
		// A thousand replicas hold a few GB of live heap; without a limit
		// the default GOGC lets the heap (and RSS) grow to twice that.
		if os.Getenv("GOMEMLIMIT") == "" {
			debug.SetMemoryLimit(6 << 30)
		}
		if path := os.Getenv("PARLEY_SIM_MEMPROFILE"); path != "" {
			defer func() {
				if f, err := os.Create(path); err == nil {
					pprof.Lookup("heap").WriteTo(f, 0)
					f.Close()
				}
			}()
		}
		rep, err := simulations.Run(ctx, sc, simulations.RunOptions{Nodes: *nodes, Seed: *seed, Out: *out, Progress: stderr, RealTime: *real})
		if err != nil {
			fmt.Fprintf(stderr, "error: simulation %s: %v\n", sc.Name, err)
			return 1
		}
		if *asJSON {
			b, _ := json.MarshalIndent(rep, "", "  ")
			fmt.Fprintln(stdout, string(b))
			return 0
		}
		conv := "n/a (no partition)"
		if rep.ConvergenceMS != nil {
			conv = fmt.Sprintf("%.0f ms", *rep.ConvergenceMS)
		}
		fmt.Fprintf(stdout, "scenario      %s (seed %d, %d nodes, %s time)\n", rep.Scenario, rep.Seed, rep.Nodes, rep.TimeMode)
		fmt.Fprintf(stdout, "time          %.1f s virtual in %.1f s wall, peak RSS %.0f MB\n", rep.VirtualDurationS, rep.WallS, rep.PeakRSSMB)
		fmt.Fprintf(stdout, "published     %d messages\n", rep.EventsPublished)
		fmt.Fprintf(stdout, "completeness  %.4f (%d of %d deliveries)\n", rep.Completeness, rep.Deliveries, rep.DeliveriesExpected)
		fmt.Fprintf(stdout, "latency       p50 %.0f ms, p90 %.0f ms, p99 %.0f ms, max %.0f ms\n", rep.LatencyMS.P50, rep.LatencyMS.P90, rep.LatencyMS.P99, rep.LatencyMS.Max)
		fmt.Fprintf(stdout, "convergence   %s\n", conv)
		fmt.Fprintf(stdout, "duplicates    %.2f per delivery\n", rep.DuplicatesPerDelivery)
		for _, w := range rep.Warnings {
			fmt.Fprintf(stdout, "warning       %s\n", w)
		}
		if *out != "" {
			fmt.Fprintf(stdout, "outputs       %s\n", *out)
		}
		return 0
	}
	fmt.Fprint(stderr, simUsage)
	return 2
}
