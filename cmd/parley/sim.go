package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/parley-p2p/parley/simulations"
)

// cmdSim implements "parley sim": network simulations of the real node
// code in virtual time (see simulations/README.md).
func cmdSim(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return simUsageError(stderr, "", "missing sim subcommand")
	}
	switch args[0] {
	case "list":
		fs := flag.NewFlagSet("sim list", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		asJSON := fs.Bool("json", false, "print JSON")
		if err := fs.Parse(args[1:]); err != nil {
			return simUsageError(stderr, "list", flagMessage(err))
		}
		if fs.NArg() > 0 {
			return simUsageError(stderr, "list", fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
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
		fs.SetOutput(io.Discard)
		nodes := fs.Int("nodes", 0, "honest nodes (default: the scenario's)")
		seed := fs.Uint64("seed", 0, "seed (default: the scenario's)")
		out := fs.String("out", "", "output directory for report.json, CSV series and SVG plots")
		asJSON := fs.Bool("json", false, "print the report as JSON")
		real := fs.Bool("real-time", false, "run on the wall clock instead of virtual time")
		backend := fs.String("backend", "mocknet", "`BACKEND`: mocknet (in-process, virtual time) or netns (real daemons in network namespaces, root only)")
		against := fs.String("against", "", "a baseline run's report.json (or its --out `DIR`): the report says whether this run meets the goal against it")
		cpuFrom := fs.String("cpu-from", "", "a netns run's report.json (or its --out `DIR`) of the same scenario: give the virtual nodes its daemons' CPU and compare with it (mocknet only)")
		progress := fs.Bool("progress", false, "print progress lines on standard error even when it is not a terminal (for long runs under nohup or CI)")
		pos, err := parseInterspersed(fs, args[1:])
		if err != nil {
			return simUsageError(stderr, "run", err.Error())
		}
		if *backend != "mocknet" && *backend != "netns" {
			return simUsageError(stderr, "run", fmt.Sprintf("unknown backend %q (use mocknet or netns)", *backend))
		}
		sc, err := simulations.Load(pos[0])
		if err != nil {
			fmt.Fprintf(stderr, "parley: %v\n", err)
			return 1
		}
		var base *simulations.Report
		if *against != "" {
			if base, err = simulations.LoadReport(*against); err != nil {
				fmt.Fprintf(stderr, "parley: %v\n", err)
				return 1
			}
		}
		var netns *simulations.Report
		if *cpuFrom != "" {
			if *backend != "mocknet" {
				return simUsageError(stderr, "run", "--cpu-from is for the mocknet backend")
			}
			if netns, err = simulations.LoadReport(*cpuFrom); err != nil {
				fmt.Fprintf(stderr, "parley: %v\n", err)
				return 1
			}
			if _, _, err := simulations.CPUFrom(netns); err != nil {
				fmt.Fprintf(stderr, "parley: %v\n", err)
				return 1
			}
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if *backend == "netns" {
			if *real {
				fmt.Fprintln(stderr, "parley: --real-time is for the mocknet backend (netns always runs in real time)")
				return 2
			}
			prog, _, done := simProgress(stderr, *asJSON, *progress)
			rep, err := simulations.RunNetns(ctx, sc, simulations.NetnsOptions{Nodes: *nodes, Seed: *seed, Out: *out, Progress: prog, Against: base})
			done()
			if errors.Is(err, context.Canceled) {
				fmt.Fprintf(stderr, "parley: simulation %s interrupted (daemons stopped, namespaces deleted)\n", sc.Name)
				return 1
			}
			if err != nil {
				fmt.Fprintf(stderr, "parley: simulation %s on netns: %v\n", sc.Name, err)
				return 1
			}
			return printSimReport(stdout, rep, *asJSON, *out)
		}
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
		prog, step, done := simProgress(stderr, *asJSON, *progress)
		rep, err := simulations.Run(ctx, sc, simulations.RunOptions{Nodes: *nodes, Seed: *seed, Out: *out, Progress: prog, Step: step, RealTime: *real, Against: base, CPUFrom: netns})
		done()
		if err != nil {
			fmt.Fprintf(stderr, "parley: simulation %s: %v\n", sc.Name, err)
			return 1
		}
		return printSimReport(stdout, rep, *asJSON, *out)
	case "export-shadow":
		fs := flag.NewFlagSet("sim export-shadow", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		nodes := fs.Int("nodes", 0, "honest nodes (default: the scenario's)")
		seed := fs.Uint64("seed", 0, "seed (default: the scenario's)")
		out := fs.String("out", "", "output `DIR` for shadow.yaml and the nodes' homes (required)")
		bin := fs.String("binary", "", "absolute `PATH` of the parley binary on the Shadow machine (default: this executable)")
		asJSON := fs.Bool("json", false, "print what was written as JSON")
		pos, err := parseInterspersed(fs, args[1:])
		if err != nil {
			return simUsageError(stderr, "export-shadow", err.Error())
		}
		if *out == "" {
			return simUsageError(stderr, "export-shadow", "sim export-shadow needs --out DIR")
		}
		sc, err := simulations.Load(pos[0])
		if err != nil {
			fmt.Fprintf(stderr, "parley: %v\n", err)
			return 1
		}
		ex, err := simulations.ExportShadow(sc, simulations.ShadowOptions{Nodes: *nodes, Seed: *seed, Out: *out, Binary: *bin})
		if err != nil {
			fmt.Fprintf(stderr, "parley: %v\n", err)
			return 1
		}
		if *asJSON {
			b, _ := json.MarshalIndent(ex, "", "  ")
			fmt.Fprintln(stdout, string(b))
			return 0
		}
		fmt.Fprintf(stdout, "wrote %s: %d hosts, %d links, %d sends, stop at %v simulated\n", ex.Config, ex.Hosts, ex.Edges, ex.Sends, ex.StopTime)
		for _, w := range ex.Warnings {
			fmt.Fprintf(stdout, "warning  %s\n", w)
		}
		fmt.Fprintf(stdout, "run it with: shadow --data-directory shadow.data %s\n", ex.Config)
		return 0
	}
	return simUsageError(stderr, "", fmt.Sprintf("unknown command \"sim %s\"", args[0]))
}

// simUsageError prints a usage error of "sim SUB" (SUB empty: the sim
// group) in the layout of every other command, and returns exit code 2.
func simUsageError(stderr io.Writer, sub, msg string) int {
	fmt.Fprintf(stderr, "parley: %s\n", msg)
	help := []string{"help", "sim"}
	if sub != "" {
		help = append(help, sub)
	}
	run(help, nil, stderr, stderr)
	return 2
}

// parseInterspersed parses flags before and after the one positional
// argument.
func parseInterspersed(fs *flag.FlagSet, rest []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(rest); err != nil {
			return nil, errors.New(flagMessage(err))
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	switch {
	case len(pos) == 0:
		return nil, errors.New("missing argument")
	case len(pos) > 1:
		return nil, fmt.Errorf("unexpected argument %q", pos[1])
	}
	return pos, nil
}

// printSimReport prints a run's summary (or the report as JSON).
func printSimReport(stdout io.Writer, rep *simulations.Report, asJSON bool, out string) int {
	if asJSON {
		b, _ := json.MarshalIndent(rep, "", "  ")
		fmt.Fprintln(stdout, string(b))
		return 0
	}
	conv := "n/a (no partition)"
	if rep.ConvergenceMS != nil {
		conv = fmt.Sprintf("%.0f ms", *rep.ConvergenceMS)
	}
	fmt.Fprintf(stdout, "scenario      %s (seed %d, %d nodes, %s time)\n", rep.Scenario, rep.Seed, rep.Nodes, rep.TimeMode)
	fmt.Fprintf(stdout, "backend       %s\n", rep.Backend)
	fmt.Fprintf(stdout, "time          %.1f s %s in %.1f s wall, peak RSS %.0f MB\n", rep.VirtualDurationS, rep.TimeMode, rep.WallS, rep.PeakRSSMB)
	fmt.Fprintf(stdout, "published     %d messages\n", rep.EventsPublished)
	fmt.Fprintf(stdout, "completeness  %.4f (%d of %d deliveries)\n", rep.Completeness, rep.Deliveries, rep.DeliveriesExpected)
	fmt.Fprintf(stdout, "latency       p50 %.0f ms, p90 %.0f ms, p99 %.0f ms, max %.0f ms\n", rep.LatencyMS.P50, rep.LatencyMS.P90, rep.LatencyMS.P99, rep.LatencyMS.Max)
	fmt.Fprintf(stdout, "convergence   %s\n", conv)
	fmt.Fprintf(stdout, "duplicates    %.2f per delivery\n", rep.DuplicatesPerDelivery)
	if c := rep.CPU; c != nil {
		fmt.Fprintf(stdout, "cpu           %.2f cores during traffic, %.1f ms per message (all nodes), share while runnable %.3f\n", c.CoresMean, c.MSPerMessage, c.ShareRunnable)
		if c.IdleCoresMean > 0 || c.BackgroundCores > 0 {
			fmt.Fprintf(stdout, "cpu idle      %.2f cores after traffic (the daemons, no messages); other work on the host during traffic %.2f cores\n", c.IdleCoresMean, c.BackgroundCores)
		}
		if p := c.Path; p != nil && p.Decomposition != nil {
			d := p.Decomposition
			fmt.Fprintf(stdout, "path          p50 / p90 of %d deliveries: links %.0f / %.0f ms, hops beyond them %.1f / %.1f ms, validate %.1f / %.1f ms, after validation %.1f / %.1f ms (apply, watch stream); %d took a longer path than the shortest\n",
				d.Deliveries, d.LinksMS.P50, d.LinksMS.P90, d.HopsMS.P50, d.HopsMS.P90, d.ValidateMS.P50, d.ValidateMS.P90, d.AfterMS.P50, d.AfterMS.P90, d.Longer)
		}
	}
	if p := rep.PathLatencyMS; p != nil {
		fmt.Fprintf(stdout, "path latency  p50 %.0f ms, p90 %.0f ms, p99 %.0f ms (publish to taken in, by the daemons' traces: no watch stream)\n", p.P50, p.P90, p.P99)
	}
	if a := rep.Against; a != nil {
		verdict := "met"
		if !a.Met {
			verdict = "NOT met: " + a.Why
		}
		fmt.Fprintf(stdout, "against       %s (seed %d): completeness %.4f, p50 %.0f ms, p99 %.0f ms; p50 %.2fx, p99 %.2fx\n", a.Scenario, a.Seed, a.Completeness, a.LatencyMS.P50, a.LatencyMS.P99, a.P50Ratio, a.P99Ratio)
		fmt.Fprintf(stdout, "goal          %s: %s\n", a.Goal, verdict)
	}
	if x := rep.CrossBackend; x != nil {
		verdict := "met"
		if !x.Met {
			verdict = "NOT met: " + x.Why
		}
		fmt.Fprintf(stdout, "cpu model     from the netns run: %s\n", x.Derivation)
		fmt.Fprintf(stdout, "netns run     %s (seed %d, %d nodes): p50 %.0f ms, p90 %.0f ms; this run %+.0f %% / %+.0f %%\n", x.Scenario, x.Seed, x.Nodes, x.LatencyMS.P50, x.LatencyMS.P90, x.DeltaP50*100, x.DeltaP90*100)
		if p := x.PathLatencyMS; p != nil {
			fmt.Fprintf(stdout, "netns path    publish to taken in, by the daemons' traces: p50 %.0f ms, p90 %.0f ms; this run %+.0f %% / %+.0f %%\n", p.P50, p.P90, x.PathDeltaP50*100, x.PathDeltaP90*100)
		}
		fmt.Fprintf(stdout, "goal          %s of %s: %s\n", x.Goal, x.JudgedOn, verdict)
	}
	for _, w := range rep.Warnings {
		fmt.Fprintf(stdout, "warning       %s\n", w)
	}
	if out != "" {
		fmt.Fprintf(stdout, "outputs       %s\n", out)
	}
	return 0
}

// simProgress is where a simulation shows its progress: on a terminal (and
// without --json) a bar of virtual time (the one renderer, progress.go)
// and, above it, the simulation's messages; elsewhere nothing, unless
// lines (--progress) asks for the messages and a line every tenth of the
// traffic phase, as plain lines. step feeds the bar; done ends its line.
func simProgress(stderr io.Writer, asJSON, lines bool) (w io.Writer, step func(done, total time.Duration, note string), done func()) {
	if asJSON || !isTerminal(stderr) {
		if lines {
			return stderr, nil, func() {}
		}
		return nil, nil, func() {}
	}
	bar := newProgressBar(stderr, "sim", false, time.Now)
	bar.millis = true
	return &barLines{bar: bar}, func(d, t time.Duration, note string) {
		bar.Note(note)
		bar.Set(d.Milliseconds(), t.Milliseconds())
	}, bar.Finish
}
