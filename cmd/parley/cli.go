package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/parley-p2p/parley/api"
)

// command is one parley command. Its run function builds its own FlagSet
// (with c.flags) and parses its arguments (with c.parse).
type command struct {
	name    string // "send" or "room create"
	args    string // synopsis after the name
	summary string
	run     func(c *cli, args []string) error
}

// commands in the order the usage text lists them.
var commands = []*command{
	{"init", "[--name NAME]", "create this node's identity (user and device keys); changes nothing if one exists", runInit},
	{"daemon", "[--listen MULTIADDR]... [--api HOST:PORT] [--bootstrap MULTIADDR]... [--no-mdns] [--no-dht] [--relay[=open]] [--relay-circuit-bytes BYTES] [--no-peer-exchange] [--no-portmap] [--reachability public|private] [--log-level LEVEL] [--log-format text|json] [--metrics HOST:PORT] [--gossip-trace FILE] [--stun HOST:PORT] [--no-stun] [--turn] [--turn-ip IP] [--turn-ports MIN-MAX] [--turn-kbps N] [--turn-total-kbps N]", "run the node in the foreground until SIGINT or SIGTERM", runDaemon},
	{"id", "", "who this node is: user, device, peer ID and addresses", runID},
	{"peers", "", "connected peers", runPeers},
	{"connect", "MULTIADDR", "dial a peer now and remember it for reconnection", runConnect},
	{"disconnect", "PEER_ID", "close all connections to a peer and forget it", runDisconnect},
	{"open", "[--browser]", "a one-time URL that logs a browser into the web app the daemon serves", runOpen},
	{"status", "", "node health: peers, rooms, store size, sync state", runStatus},
	{"room create", "[--name N] [--topic T] [--public] [--history shared|joined] [--plaintext|--encrypted]", "create a room (private and end-to-end encrypted unless --public)", runRoomCreate},
	{"room list", "", "rooms this node is in, invited to, or has left", runRoomList},
	{"room info", "ROOM", "a room's state and how complete this copy is", runRoomInfo},
	{"room join", "ROOM|LINK [--via MULTIADDR]...", "join a public room or accept an invite", runRoomJoin},
	{"room link", "ROOM", "print a link to the room with this node's addresses, for 'parley room join LINK'", runRoomLink},
	{"room host", "ROOM [--via MULTIADDR]...", "store and serve a room's encrypted log without being a member (a blind mirror)", runRoomHost},
	{"room unhost", "ROOM", "stop storing and serving a hosted room", runRoomUnhost},
	{"room invite", "ROOM USER", "invite a user to a room (their devices are told, and see it in 'parley invites')", runRoomInvite},
	{"room leave", "ROOM", "leave a room", runRoomLeave},
	{"room kick", "ROOM USER [--reason R]", "remove a member (they may come back if invited again)", runRoomKick},
	{"room ban", "ROOM USER [--reason R]", "remove a user and keep them out until unbanned", runRoomBan},
	{"room unban", "ROOM USER", "lift a ban (the user may then be invited again)", runRoomUnban},
	{"room role", "ROOM USER admin|moderator|member|POWER", "change a member's role (power level 100, 50, 0 or a number)", runRoomRole},
	{"room set", "ROOM [--name N] [--topic T] [--avatar FILE]", "change a room's name, topic or avatar", runRoomSet},
	{"room limits", "ROOM [--messages N] [--bytes N] [--join-work BITS]", "show or set a room's rate limits per member device and the proof of work on joins", runRoomLimits},
	{"invites", "[--requests]", "pending invites for this user from contacts (--requests: those from strangers)", runInvites},
	{"invites policy", "[anyone|contacts|nobody]", "who may send this user invites (without an argument: show it)", runInvitesPolicy},
	{"invites decline", "ROOM", "forget a pending invite (the inviter is not told)", runInvitesDecline},
	{"dm", "USER", "the direct-message room with a user (created on first use, the same room after)", runDM},
	{"profile set", "[--name NAME] [--avatar FILE]", "change this user's display name or avatar", runProfileSet},
	{"profile get", "[USER]", "a user's display name and avatar (default: this user)", runProfileGet},
	{"block", "USER", "hide a user's messages and invites everywhere, for this user only", runBlock},
	{"unblock", "USER", "stop hiding a user's messages and invites", runUnblock},
	{"blocked", "", "users this user blocks", runBlocked},
	{"device list", "[USER]", "devices of a user (default: this user)", runDeviceList},
	{"device link", "", "a one-time code that makes a new device of this user (on a device holding the master key)", runDeviceLink},
	{"device join", "CODE", "make this fresh home a device of the user whose device printed CODE (before the daemon first runs)", runDeviceJoin},
	{"device revoke", "DEVICE", "remove a device of this user from every room; it cannot read what follows", runDeviceRevoke},
	{"verify", "USER [--confirm]", "the safety number and emoji to compare with USER; --confirm marks USER as verified", runVerify},
	{"send", "ROOM TEXT|- [--markdown] [--reply-to EVENT] [--thread ROOT] [--mention USER]...", "send a text message (- reads it from stdin)", runSend},
	{"send-file", "ROOM FILE [--voice] [--caption TEXT]", "send an image, video, audio, voice message or file (encrypted; its key travels in the message)", runSendFile},
	{"edit", "ROOM EVENT TEXT|- [--markdown] [--mention USER]...", "change the text of one of your messages", runEdit},
	{"react", "ROOM EVENT KEY", "react to a message with an emoji or short text", runReact},
	{"unreact", "ROOM EVENT KEY", "withdraw your reaction KEY from a message", runUnreact},
	{"read", "ROOM EVENT", "send a read receipt: you have read up to EVENT", runRead},
	{"typing", "ROOM [on|off] [--stop]", "tell the room you are typing (lapses after 30 s) or stopped", runTyping},
	{"presence", "online|away|offline | get [USER]", "set your presence in every room you share, or show a user's", runPresence},
	{"settings", "[--typing on|off] [--presence on|off]", "whether this node sends and shows typing and presence", runSettings},
	{"call", "ROOM [--video] [--send FILE]... [--record DIR]", "the daemon joins the room's call (or starts one, ringing the members), sends FILE (Ogg Opus or WAV; silence without) and records the others; in a video call (`--video`, or an `.ivf` FILE) it also sends video: a VP8 `.ivf` FILE given with a second `--send`, or a test pattern (colour bars, 320×240 at 15 fps)", runCall},
	{"call hangup", "ROOM", "the daemon leaves the room's call", runCallHangup},
	{"calls", "ROOM", "running calls of a room and who is in them", runCalls},
	{"history", "ROOM [--limit N] [--before EVENT | --after EVENT | --around EVENT] [--thread ROOT] [--versions EVENT] [--all]", "the visible timeline, oldest first, each line with the event's short reference; --limit N: the newest N (before EVENT), the oldest N after EVENT, or N around EVENT (it and the newer half, then the older half)", runHistory},
	{"search", "[ROOM] QUERY [--limit N]", "find messages by every word of QUERY, newest first, in ROOM or in every joined room (what this node can read)", runSearch},
	{"redact", "ROOM EVENT [--reason R]", "delete a message (your own, or any as a moderator) on every node", runRedact},
	{"watch", "[ROOM]", "stream new events as they arrive (one JSON object per line with --json)", runWatch},
	{"export", "ROOM -o FILE | --html DIR | --format jsonl|md -o FILE", "write a room's signed history with its media to a verifiable archive (a CAR file), or a readable page or file", runExport},
	{"import", "FILE | --from FORMAT PATH", "merge an archive written by 'parley export', or import another messenger's chat export (idempotent)", runImport},
	{"media add", "FILE", "store a file, encrypted and content-addressed; prints its CID and file key", runMediaAdd},
	{"media get", "CID[#KEY] -o FILE [--key KEY]", "fetch a file (from connected peers if needed), verify, decrypt and write it; the key comes as CID#KEY, --key, or from a message that carries the file", runMediaGet},
	{"media save", "ROOM EVENT [-o FILE]", "fetch, verify, decrypt and write the file of a message (default: its own name, in the current folder)", runMediaSave},
	{"media gc", "[--grace DURATION]", "delete the stored files that no message, thumbnail or avatar refers to any more, except those added or fetched within the grace period (default 1h)", runMediaGC},
	{"version", "", "the version of this parley program: its module version and the commit it was built from", runVersion},
	{"sim list", "[--json]", "built-in network-simulation scenarios", runSim},
	{"sim run", "SCENARIO|FILE [--nodes N] [--seed S] [--out DIR] [--json] [--real-time] [--backend mocknet|netns] [--against BASELINE] [--cpu-from NETNS] [--progress]", "run a simulation of many real nodes in virtual time (netns: real daemons, as root); --against: a baseline run's report.json or --out DIR, and the report says whether this run meets the attack goal against it; --cpu-from: a netns run's report of the same scenario, whose daemons' CPU the virtual nodes get, and the report compares the two (p50 and p90 within 20 %); --progress: progress lines on standard error even off a terminal", runSim},
	{"sim export-shadow", "SCENARIO|FILE [--nodes N] [--seed S] [--binary PATH] [--json] --out DIR", "write a Shadow configuration for the scenario", runSim},
}

// groups are the words that only start a two-word command ("room create").
var groups = []string{"room", "profile", "media", "sim", "device"}

const globalFlagsHelp = `Global flags (accepted anywhere on the line):
  --home DIR   the node's data folder (default: $PARLEY_HOME, else $XDG_DATA_HOME/parley,
               else ~/.local/share/parley)
  --json       print one JSON object (streams: one per line) instead of text for people
  --version    print the version (as 'parley version')
`

// usageError is a malformed command line: exit 2 with the usage text.
type usageError struct {
	cmd   *command // nil: the global usage
	group string   // set for "parley room" without a known subcommand
	msg   string
	brief bool // the error line alone, without the usage text
}

func (e *usageError) Error() string { return e.msg }

// errHelp asks for the usage text on stdout and exit 0.
type errHelp struct {
	cmd   *command
	group string
}

func (e *errHelp) Error() string { return "help requested" }

// cli is the state of one invocation.
type cli struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer

	homeFlag string
	json     bool
	version  bool // --version before the command
	cmd      *command
	fs       *flag.FlagSet // the current command's flags, for its usage text
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) > 0 && args[0] == "sim" {
		if slices.ContainsFunc(args, func(a string) bool { return a == "-h" || a == "-help" || a == "--help" }) {
			return run(append([]string{"help"}, args[:min(2, len(args))]...), stdin, stdout, stderr)
		}
		return cmdSim(args[1:], stdout, stderr) // its own flag handling: see sim.go
	}
	tw := &termWriter{w: stdout}
	c := &cli{ctx: ctx, stdin: stdin, stdout: tw, stderr: stderr}
	tw.raw = func() bool { return c.json }
	err := c.dispatch(args)
	tw.flush()
	var ue *usageError
	var he *errHelp
	switch {
	case err == nil:
		return 0
	case errors.As(err, &he):
		writeUsage(stdout, he.cmd, he.group, c.fs)
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "parley: %s\n", oneLine(ue.msg))
		if !ue.brief {
			writeUsage(stderr, ue.cmd, ue.group, c.fs)
		}
		return 2
	default:
		fmt.Fprintf(stderr, "parley: %s\n", oneLine(err.Error()))
		return 1
	}
}

// dispatch finds the command (global flags may precede it) and runs it.
func (c *cli) dispatch(args []string) error {
	fs := c.flags()
	fs.BoolVar(&c.version, "version", false, "print the version")
	rest, err := parseArgs(fs, args, true)
	if err != nil {
		return c.flagError(err, "")
	}
	if c.version && len(rest) == 0 {
		c.cmd = lookup("version")
		return runVersion(c, nil)
	}
	if len(rest) == 0 {
		return &usageError{msg: "missing command"}
	}
	name := rest[0]
	rest = rest[1:]
	switch {
	case name == "help":
		return c.help(rest)
	case slices.Contains(groups, name):
		fs := c.flags()
		sub, err := parseArgs(fs, rest, true)
		if err != nil {
			return c.flagError(err, name)
		}
		if len(sub) == 0 {
			return &usageError{group: name, msg: fmt.Sprintf("missing %s subcommand", name)}
		}
		name, rest = name+" "+sub[0], sub[1:]
	case name == "call":
		// "call ROOM" joins a call, "call hangup ROOM" leaves it.
		if sub, err := parseArgs(c.flags(), rest, true); err == nil && len(sub) > 1 && sub[0] == "hangup" {
			name, rest = "call hangup", sub[1:]
		}
	case name == "invites":
		// "invites" is a command and "invites policy" and "invites
		// decline" ones of their own; a flag error is left to "invites" to
		// report with its usage.
		if sub, err := parseArgs(c.flags(), rest, true); err == nil && len(sub) > 0 && (sub[0] == "policy" || sub[0] == "decline") {
			name, rest = "invites "+sub[0], sub[1:]
		}
	}
	cmd := lookup(name)
	if cmd == nil {
		if group, _, ok := strings.Cut(name, " "); ok && slices.Contains(groups, group) {
			return &usageError{group: group, msg: fmt.Sprintf("unknown command %q", name)}
		}
		return &usageError{brief: true, msg: fmt.Sprintf("unknown command %q%s (see: parley help)", name, didYouMean(name))}
	}
	c.cmd = cmd
	return cmd.run(c, rest)
}

func (c *cli) help(args []string) error {
	name := strings.Join(args, " ")
	switch {
	case name == "":
		return &errHelp{}
	case slices.Contains(groups, name):
		return &errHelp{group: name}
	case strings.HasPrefix(name, "sim ") && lookup(name) != nil:
		return &errHelp{cmd: lookup(name)} // sim.go parses its own flags
	case lookup(name) != nil:
		c.cmd = lookup(name)
		return c.cmd.run(c, []string{"--help"}) // builds its flags for the usage text
	}
	return &usageError{brief: true, msg: fmt.Sprintf("unknown command %q%s (see: parley help)", name, didYouMean(name))}
}

// didYouMean names the commands that start with word or that word starts
// with, as a hint after "unknown command".
func didYouMean(word string) string {
	var near []string
	first, _, _ := strings.Cut(word, " ")
	for _, c := range commands {
		n, _, _ := strings.Cut(c.name, " ")
		if len(first) >= 2 && (strings.HasPrefix(n, first) || strings.HasPrefix(first, n)) && !slices.Contains(near, n) {
			near = append(near, n)
		}
	}
	if len(near) == 0 || len(near) > 4 {
		return ""
	}
	return "; did you mean: " + strings.Join(near, ", ")
}

func lookup(name string) *command {
	for _, cmd := range commands {
		if cmd.name == name {
			return cmd
		}
	}
	return nil
}

// flags returns a FlagSet holding the global flags; commands add their own.
func (c *cli) flags() *flag.FlagSet {
	name := "parley"
	if c.cmd != nil {
		name = c.cmd.name
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.homeFlag, "home", c.homeFlag, "the node's data folder")
	fs.BoolVar(&c.json, "json", c.json, "print JSON")
	c.fs = fs
	return fs
}

// parse parses a command's arguments and checks the number of positional
// ones (max < 0: no limit).
func (c *cli) parse(fs *flag.FlagSet, args []string, min, max int) ([]string, error) {
	pos, err := parseArgs(fs, args, false)
	if err != nil {
		return nil, c.flagError(err, "")
	}
	switch {
	case len(pos) < min:
		return nil, &usageError{cmd: c.cmd, msg: "missing argument"}
	case max >= 0 && len(pos) > max:
		msg := fmt.Sprintf("unexpected argument %q", pos[max])
		switch c.cmd.name {
		case "send", "edit":
			msg += " (quote a message that has spaces)"
		case "room set", "room kick", "room ban", "profile set", "redact":
			msg += " (quote a value that has spaces)"
		case "search":
			msg += " (quote a search that has spaces)"
		}
		return nil, &usageError{cmd: c.cmd, msg: msg}
	}
	return pos, nil
}

func (c *cli) flagError(err error, group string) error {
	if errors.Is(err, flag.ErrHelp) {
		return &errHelp{cmd: c.cmd, group: group}
	}
	return &usageError{cmd: c.cmd, group: group, msg: flagMessage(err)}
}

// flagMessage is the flag package's error with flags written as --name.
func flagMessage(err error) string {
	return strings.NewReplacer("flag -", "flag --", "defined: -", "defined: --", "argument: -", "argument: --").Replace(err.Error())
}

// usagef reports a bad flag value or argument shape of the current command.
func (c *cli) usagef(format string, args ...any) error {
	return &usageError{cmd: c.cmd, msg: fmt.Sprintf(format, args...)}
}

// parseArgs parses args with fs and lets flags stand before, between and
// after positional arguments, which it returns in order. "--" ends the flags;
// "-" is a positional argument. With stop, parsing ends at the first
// positional argument and it and everything after it are returned unparsed.
func parseArgs(fs *flag.FlagSet, args []string, stop bool) ([]string, error) {
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(pos, args[i+1:]...), nil
		}
		if len(a) < 2 || a[0] != '-' || isNumber(a) {
			if stop {
				return args[i:], nil
			}
			pos = append(pos, a)
			continue
		}
		n := 1
		if name := strings.TrimLeft(a, "-"); !strings.Contains(name, "=") && i+1 < len(args) {
			if f := fs.Lookup(name); f != nil && !isBoolFlag(f) {
				n = 2 // the flag's value is the next argument
			}
		}
		if err := fs.Parse(args[i : i+n]); err != nil {
			return nil, err
		}
		if fs.NArg() != 0 {
			return nil, fmt.Errorf("bad flag syntax: %s", a)
		}
		i += n - 1
	}
	return pos, nil
}

// isNumber reports a negative number, which is a value, not a flag
// ("parley room role ROOM USER -5").
func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

// home is the node's data folder, absolute where possible.
func (c *cli) home() string {
	h := c.homeFlag
	if h == "" {
		h = api.DefaultHome()
	}
	if abs, err := filepath.Abs(h); err == nil {
		h = abs
	}
	return h
}

func writeUsage(w io.Writer, cmd *command, group string, fs *flag.FlagSet) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	switch {
	case cmd != nil:
		fmt.Fprintf(w, "usage: parley %s %s\n\n%s%s.\n\n", cmd.name, cmd.args, strings.ToUpper(cmd.summary[:1]), cmd.summary[1:])
		if fs != nil && fs.Name() == cmd.name {
			n := 0
			fs.VisitAll(func(f *flag.Flag) {
				if f.Name == "home" || f.Name == "json" {
					return
				}
				if n == 0 {
					fmt.Fprintln(w, "Flags:")
				}
				n++
				arg, help := flag.UnquoteUsage(f)
				if arg != "" {
					arg = " " + arg
				}
				if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
					help += fmt.Sprintf(" (default %s)", f.DefValue)
				}
				dash := "--"
				if len(f.Name) == 1 {
					dash = "-" // -o
				}
				fmt.Fprintf(tw, "  %s%s%s\t%s\n", dash, f.Name, arg, help)
			})
			tw.Flush()
			if n > 0 {
				fmt.Fprintln(w)
			}
		}
	case group != "":
		fmt.Fprintf(w, "usage: parley %s COMMAND [ARGS]\n\nCommands:\n", group)
		for _, c := range commands {
			if strings.HasPrefix(c.name, group+" ") {
				fmt.Fprintf(tw, "  %s %s\t%s\n", c.name, c.args, c.summary)
			}
		}
		tw.Flush()
		fmt.Fprintln(w)
	default:
		fmt.Fprint(w, "usage: parley COMMAND [ARGS] [FLAGS]\n\nParley is a peer-to-peer messenger. Run a node with 'parley daemon'; the other\ncommands talk to that running node.\n\nCommands:\n")
		for _, c := range commands {
			fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
		}
		tw.Flush()
		fmt.Fprint(w, "\nRun 'parley help COMMAND' for a command's arguments.\n\n")
	}
	fmt.Fprint(w, globalFlagsHelp)
	fmt.Fprint(w, "\nExit status: 0 success, 1 failure (one 'parley: ...' line on stderr), 2 usage error.\n")
}

// oneLine makes sure an error message is a single line, safe to print
// (it may quote names and text from other people).
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	s = strings.ReplaceAll(s, "\r", "")
	return escapeTerm(strings.ReplaceAll(s, "\n", "; "), false)
}

// runSim is never reached: run hands "sim" to cmdSim before dispatching.
func runSim(c *cli, args []string) error {
	return errors.New("sim is handled by cmdSim")
}
