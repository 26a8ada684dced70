package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/crdt/faultstore"
)

// TestEngineScripts drives engine cores from the scripts in
// testdata/engine and prints the Ready of every step, the way etcd raft's
// tests print each Ready (regenerate with -rewrite). The engines share a
// fake clock; their timers are not scheduled but listed, and fired by
// `tick`; published events travel only by `deliver`. Commands:
//
//	user NAME                       a new user with one device (an engine)
//	device NAME of=USER             a new device of USER (an engine)
//	create NAME room=R [e2ee] [public]
//	track NAME room=R               start keeping R (to join it)
//	join NAME room=R
//	invite NAME room=R user=U       (prints the invite in the Ready)
//	take-invite NAME from=A room=R  the invite A's Ready carried to NAME
//	decline NAME room=R             NAME declines its invite to R
//	invites NAME                    NAME's pending invites and requests, by room
//	send NAME room=R text=T
//	kick NAME room=R user=U
//	dm NAME user=U room=R           a direct-message room with U, named R
//	revoke NAME device=D            D is a device engine's name
//	deliver from=A to=(B,C..) [all] what A published and B has not had yet (all: everything again)
//	fail NAME [n=K]                 NAME's K-th next commit fails (1: the next)
//	fail NAME keys                  NAME's writes of epoch secrets fail (until fail NAME off)
//	fail NAME invites               NAME's writes of its invite book fail (until fail NAME off)
//	tick d=DURATION                 advance the clock, fire the timers due
//	watch NAME                      NAME's engine gets a watcher (watch items appear)
//	texts NAME room=R               the message texts NAME shows, undecrypted count
//
// Besides the Ready's items, a step prints the writes ahead the driver did
// ("write keep R": an epoch secret of room R; "write prefs"), each before
// the commit that followed it, and the invite book's writes after the
// commits ("write invite R", "write invite-delete R").
func TestEngineScripts(t *testing.T) {
	datadriven.Walk(t, "testdata/engine", func(t *testing.T, path string) {
		w := newScriptWorld(t)
		defer w.close()
		datadriven.RunTest(t, path, w.run)
	})
}

type scriptNode struct {
	name   string
	user   string // the user's name
	e      *Engine
	fs     *faultstore.Store
	ident  *crdt.Identity
	master *crdt.SecretKey
	out    []string      // Ready lines of the current command
	pub    []*crdt.Event // everything published, in order
	sent   map[string]int
	inv    map[crdt.RoomID]InviteOut
	timers []Timer
	writes []scriptWrite // writes ahead since the last Ready, by the commits done before each
	cancel context.CancelFunc
	done   chan struct{}
}

type scriptWrite struct {
	commits int
	line    string
}

type scriptWorld struct {
	t     *testing.T
	now   time.Time
	start time.Time
	nodes map[string]*scriptNode
	order []string
	rooms map[string]crdt.RoomID
	names map[crdt.EventID]string
	seen  map[string]int
}

func newScriptWorld(t *testing.T) *scriptWorld {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return &scriptWorld{t: t, now: start, start: start, nodes: map[string]*scriptNode{}, rooms: map[string]crdt.RoomID{},
		names: map[crdt.EventID]string{}, seen: map[string]int{}}
}

func (w *scriptWorld) close() {
	for _, n := range w.nodes {
		n.cancel()
		<-n.done
	}
}

func scriptKey(t testing.TB, s string) *crdt.SecretKey {
	b := make([]byte, 32)
	copy(b, s)
	k, err := crdt.SecretKeyFromSeed(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (w *scriptWorld) newNode(name, user string, master *crdt.SecretKey) {
	dev := scriptKey(w.t, "device "+name)
	ident := &crdt.Identity{User: master.Public(), Device: dev, Cert: crdt.CertifyDevice(master, dev.Public())}
	fs := faultstore.New(crdt.NewMemStore(), nil) // its local writes fail too (fail NAME keys)
	seed := uint64(len(w.order) + 1)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	e, err := NewEngineWith(ident, fs, "", quiet, KeyOptions{Seed: seed, Rand: mrand.NewChaCha8([32]byte{byte(seed)})})
	if err != nil {
		w.t.Fatal(err)
	}
	n := &scriptNode{name: name, user: user, e: e, fs: fs, ident: ident, master: master, sent: map[string]int{}, inv: map[crdt.RoomID]InviteOut{}, done: make(chan struct{})}
	e.now = func() time.Time { return w.now }
	e.noTimers = true
	e.onReady = func(rd *Ready) { w.record(n, rd) }
	e.onWrite = func(what string, room crdt.RoomID, err error) {
		l := "  write " + what
		if room != "" {
			l += " " + w.roomName(room)
		}
		if err != nil {
			l += ": " + err.Error()
		}
		// Placed before the commit that followed it (record).
		n.writes = append(n.writes, scriptWrite{len(e.out.Commits), l})
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() { defer close(n.done); e.Serve(ctx) }()
	w.nodes[name] = n
	w.order = append(w.order, name)
}

// label names an event by type and author, numbered when the pair repeats.
func (w *scriptWorld) label(ev *crdt.Event) string {
	if l, ok := w.names[ev.ID]; ok {
		return l
	}
	author := "?"
	for _, name := range w.order {
		if n := w.nodes[name]; n.ident.Device.Public() == ev.Device {
			author = name
		}
	}
	l := ev.Type + "/" + author
	w.seen[l]++
	if k := w.seen[l]; k > 1 {
		l += fmt.Sprintf("#%d", k)
	}
	w.names[ev.ID] = l
	return l
}

func (w *scriptWorld) roomName(id crdt.RoomID) string {
	for name, r := range w.rooms {
		if r == id {
			return name
		}
	}
	return "<new>"
}

func (w *scriptWorld) idName(id crdt.EventID) string {
	if l, ok := w.names[id]; ok {
		return l
	}
	return "unseen"
}

// record prints one Ready compactly (runs on n's engine goroutine, while
// the test waits for the step).
func (w *scriptWorld) record(n *scriptNode, rd *Ready) {
	var lines []string
	add := func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) }
	for _, p := range rd.Publish {
		w.label(p.Event)
	}
	writes := func(before int) {
		for len(n.writes) > 0 && n.writes[0].commits <= before {
			lines = append(lines, strings.TrimPrefix(n.writes[0].line, "  "))
			n.writes = n.writes[1:]
		}
	}
	for i, c := range rd.Commits {
		writes(i)
		var l []string
		for _, id := range c.Events {
			l = append(l, w.idName(id))
		}
		add("commit %s: %s", w.roomName(c.Room), strings.Join(l, " "))
	}
	writes(len(rd.Commits))
	for _, r := range rd.Track {
		add("track %s", w.roomName(r))
	}
	for _, p := range rd.Publish {
		n.pub = append(n.pub, p.Event)
		add("publish %s: %s", w.roomName(p.Room), w.label(p.Event))
	}
	for _, h := range rd.Heads {
		var l []string
		for _, id := range h.Heads {
			l = append(l, w.idName(id))
		}
		slices.Sort(l)
		add("heads %s: %s", w.roomName(h.Room), strings.Join(l, " "))
	}
	for _, f := range rd.Fetch {
		add("fetch %s: %d events", w.roomName(f.Room), len(f.IDs))
	}
	for _, f := range rd.Refused {
		add("refused %s", w.roomName(f.Room))
	}
	for _, in := range rd.Invites {
		n.inv[in.Room] = in
		add("invite %s: %s", w.roomName(in.Room), w.label(in.Invite))
	}
	for _, it := range rd.Watch {
		room := it.Room
		if room == "" { // an item for the watchers of every room (an invite)
			room, _ = crdt.ParseID(it.Item.Room)
		}
		add("watch %s: %s", w.roomName(room), it.Item.Kind)
	}
	for _, t := range rd.Timers {
		n.timers = append(n.timers, t)
		add("timer %s %s at +%s", t.Kind, w.roomName(t.Room), t.At.Sub(w.start))
	}
	for _, l := range lines {
		n.out = append(n.out, "  "+l)
	}
}

func (w *scriptWorld) node(d *datadriven.TestData, key string) *scriptNode {
	var name string
	if key == "" {
		if len(d.CmdArgs) == 0 {
			d.Fatalf(w.t, "%s: which node?", d.Cmd)
		}
		name = d.CmdArgs[0].Key
	} else {
		d.ScanArgs(w.t, key, &name)
	}
	n := w.nodes[name]
	if n == nil {
		d.Fatalf(w.t, "unknown node %q", name)
	}
	return n
}

func (w *scriptWorld) room(d *datadriven.TestData) crdt.RoomID {
	var r string
	d.ScanArgs(w.t, "room", &r)
	id, ok := w.rooms[r]
	if !ok {
		d.Fatalf(w.t, "unknown room %q", r)
	}
	return id
}

func (w *scriptWorld) run(t *testing.T, d *datadriven.TestData) string {
	w.t = t
	ctx := context.Background()
	var errs []string
	check := func(n *scriptNode, err error) {
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: error: %v", n.name, err))
		}
	}
	for _, n := range w.nodes {
		n.out = nil
	}
	switch d.Cmd {
	case "user":
		name := d.CmdArgs[0].Key
		w.newNode(name, name, scriptKey(t, "master "+name))
	case "device":
		name := d.CmdArgs[0].Key
		of := w.node(d, "of")
		w.newNode(name, of.user, of.master)
	case "create":
		n := w.node(d, "")
		var r string
		d.ScanArgs(t, "room", &r)
		enc := d.HasArg("e2ee")
		resp, err := n.e.CreateRoom(ctx, api.RoomCreateReq{Name: r, Public: d.HasArg("public"), Encrypted: &enc})
		check(n, err)
		if err == nil {
			w.rooms[r], _ = crdt.ParseID(resp.Room)
		}
		w.relabel(n, r)
	case "track":
		n := w.node(d, "")
		_, err := n.e.TrackRoom(ctx, w.room(d).String())
		check(n, err)
	case "join":
		n := w.node(d, "")
		_, err := n.e.Join(ctx, w.room(d))
		check(n, err)
	case "invite", "kick":
		n, u := w.node(d, ""), w.node(d, "user")
		act := n.e.Invite
		if d.Cmd == "kick" {
			act = n.e.Kick
		}
		_, err := act(ctx, api.RoomUserReq{Room: w.room(d).String(), User: u.ident.User.String()})
		check(n, err)
	case "take-invite":
		n, from := w.node(d, ""), w.node(d, "from")
		in, ok := from.inv[w.room(d)]
		if !ok {
			d.Fatalf(t, "no invite")
		}
		check(n, n.e.ReceiveInvite(ctx, in.Create, in.Invite, in.Name, "", nil))
	case "decline":
		n := w.node(d, "")
		_, err := n.e.Decline(ctx, api.RoomReq{Room: w.room(d).String()})
		check(n, err)
	case "invites":
		n := w.node(d, "")
		inv, err := n.e.Invites(ctx)
		check(n, err)
		var b strings.Builder
		for _, box := range []struct {
			name string
			l    []api.Invite
		}{{"invites", inv.Invites}, {"requests", inv.Requests}} {
			var names []string
			for _, i := range box.l {
				id, _ := crdt.ParseID(i.Room)
				names = append(names, w.roomName(id))
			}
			slices.Sort(names)
			fmt.Fprintf(&b, "%s: %s\n", box.name, strings.Join(names, " "))
		}
		return b.String()
	case "send":
		n := w.node(d, "")
		var text string
		d.ScanArgs(t, "text", &text)
		_, err := n.e.Send(ctx, api.SendReq{Room: w.room(d).String(), Text: text})
		check(n, err)
	case "dm":
		n, u := w.node(d, ""), w.node(d, "user")
		var r string
		d.ScanArgs(t, "room", &r)
		resp, err := n.e.CreateDM(ctx, u.ident.User)
		check(n, err)
		if err == nil {
			w.rooms[r], _ = crdt.ParseID(resp.Room)
		}
		w.relabel(n, r)
	case "revoke":
		n, dev := w.node(d, ""), w.node(d, "device")
		_, err := n.e.Revoke(ctx, api.DeviceReq{Device: dev.ident.Device.Public().String()})
		check(n, err)
	case "deliver":
		from := w.node(d, "from")
		var to []string
		d.ScanArgs(t, "to", &to)
		for _, name := range to {
			n := w.nodes[name]
			if n == nil {
				d.Fatalf(t, "unknown node %q", name)
			}
			if d.HasArg("all") {
				from.sent[name] = 0
			}
			evs := from.pub[from.sent[name]:]
			from.sent[name] = len(from.pub)
			check(n, n.e.Ingest(ctx, "", evs))
		}
	case "fail":
		n := w.node(d, "")
		if d.HasArg("off") {
			n.fs.Inject(nil)
			break
		}
		if d.HasArg("keys") {
			n.fs.Inject(faultstore.LocalPrefix([]byte("k/")))
			break
		}
		if d.HasArg("invites") {
			n.fs.Inject(faultstore.LocalPrefix([]byte(inviteKeyPrefix)))
			break
		}
		k := 1
		d.MaybeScanArgs(t, "n", &k)
		n.fs.Inject(faultstore.NthCommit(n.fs.Commits() + k))
	case "tick":
		var dur string
		d.ScanArgs(t, "d", &dur)
		step, err := time.ParseDuration(dur)
		if err != nil {
			d.Fatalf(t, "%v", err)
		}
		w.now = w.now.Add(step)
		for _, name := range w.order {
			n := w.nodes[name]
			var due []Timer
			n.timers = slices.DeleteFunc(n.timers, func(tm Timer) bool {
				if !tm.At.After(w.now) {
					due = append(due, tm)
					return true
				}
				return false
			})
			slices.SortStableFunc(due, func(a, b Timer) int { return a.At.Compare(b.At) })
			for _, tm := range due {
				check(n, n.e.do(ctx, func() error { n.e.fire(tm); return nil }))
			}
		}
	case "watch":
		n := w.node(d, "")
		_, _, err := n.e.Watch(ctx, "")
		check(n, err)
	case "texts":
		n := w.node(d, "")
		h, err := n.e.History(ctx, api.HistoryReq{Room: w.room(d).String()})
		check(n, err)
		var shown []string
		undec := 0
		for _, ev := range h.Events {
			switch {
			case ev.Type == "message" && !ev.Decrypted:
				undec++
			case ev.Type == "message":
				shown = append(shown, ev.Body)
			}
		}
		return fmt.Sprintf("%s undecrypted=%d\n", strings.Join(shown, " | "), undec)
	default:
		d.Fatalf(t, "unknown command %s", d.Cmd)
	}
	for _, n := range w.nodes { // writes of steps whose Ready asked for nothing else
		for _, wr := range n.writes {
			n.out = append(n.out, wr.line)
		}
		n.writes = nil
	}
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintln(&b, e)
	}
	for _, name := range w.order {
		if n := w.nodes[name]; len(n.out) > 0 {
			fmt.Fprintf(&b, "%s:\n%s\n", name, strings.Join(n.out, "\n"))
		}
	}
	if b.Len() == 0 {
		return "ok\n"
	}
	return b.String()
}

// relabel names the room a step created in n's Ready lines (its ID was
// not known while the Ready was recorded).
func (w *scriptWorld) relabel(n *scriptNode, room string) {
	for i, l := range n.out {
		n.out[i] = strings.ReplaceAll(l, "<new>", room)
	}
}
