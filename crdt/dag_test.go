package crdt

// The DAG scripts in testdata/dag are driven by dagEnv.handle. Commands:
//
//	author <name>                      make a device identity (deterministic keys)
//	event <name> author=<a> [prev=x,y] [auth=x,y] [room=<create>] [self=<e>]
//	      [seq=N] [depth=N] [ts=N] [type=T] [body=S]
//	                                   sign an event. Without prev it is a create
//	                                   event (a room). Defaults: room = the room of
//	                                   the first prev; self = the author's latest
//	                                   event in that room (added to prev), seq =
//	                                   seq(self)+1; depth = 1+max depth of prev;
//	                                   ts = 1+max ts of prev. Unknown names in prev
//	                                   or auth stand for forged ids nobody holds.
//	log room=<create> [max-orphans=N] [max-bytes=N]
//	                                   start a fresh Log for the room
//	add <e>,<e>,...                    offer events (in that order); prints the Ready
//	restore <e>,...                    Log.Restore as accepted
//	heads | order | missing | pending  print the log's view
//	missing max=N                      print MissingIDs(N)
//	since [known=x,y]                  print Log.Since
//	items [min=N]                      print Log.Items
//	prepare author=<a> ts=N            print the Draft Log.Prepare fills
//	status <e>                         print the status of held events
//
// Run with -rewrite to regenerate the expected output.

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

func TestDAGScripts(t *testing.T) {
	datadriven.Walk(t, "testdata/dag", func(t *testing.T, path string) {
		env := &dagEnv{
			authors: map[string]*Identity{},
			events:  map[string]*Event{},
			ids:     map[string]EventID{},
			names:   map[EventID]string{},
		}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			return env.handle(t, d)
		})
	})
}

type dagEnv struct {
	authors  map[string]*Identity
	events   map[string]*Event
	ids      map[string]EventID
	names    map[EventID]string
	authorOf map[string]string
	log      *Log
}

func (e *dagEnv) handle(t *testing.T, d *datadriven.TestData) string {
	t.Helper()
	switch d.Cmd {
	case "author":
		name := d.CmdArgs[0].Key
		e.authors[name] = scriptIdentity(t, name)
		return ""
	case "event":
		return e.event(t, d)
	case "log":
		var room string
		var cfg LogConfig
		d.ScanArgs(t, "room", &room)
		if d.HasArg("max-orphans") {
			d.ScanArgs(t, "max-orphans", &cfg.MaxOrphans)
		}
		if d.HasArg("max-bytes") {
			d.ScanArgs(t, "max-bytes", &cfg.MaxOrphanBytes)
		}
		e.log = NewLog(e.id(room), cfg)
		return ""
	case "add":
		var evs []*Event
		for _, n := range e.list(d.CmdArgs[0].Key) {
			ev, ok := e.events[n]
			if !ok {
				d.Fatalf(t, "unknown event %q", n)
			}
			evs = append(evs, ev)
		}
		return e.ready(e.log.Add(evs...))
	case "restore":
		for _, n := range e.list(d.CmdArgs[0].Key) {
			e.log.Restore(Stored{Event: e.events[n], Status: StatusAccepted})
		}
		return ""
	case "heads":
		return e.join(e.log.Heads()) + "\n"
	case "order":
		return e.join(e.log.Order()) + "\n"
	case "missing":
		max := 0
		if d.HasArg("max") {
			d.ScanArgs(t, "max", &max)
		}
		return fmt.Sprintf("count=%d ids=%s\n", e.log.MissingCount(), e.join(e.log.MissingIDs(max)))
	case "pending":
		return fmt.Sprintf("pending=%d held=%d\n", e.log.Pending(), e.log.Len())
	case "since":
		var known []EventID
		if d.HasArg("known") {
			var s string
			d.ScanArgs(t, "known", &s)
			for _, n := range e.list(s) {
				known = append(known, e.id(n))
			}
		}
		return e.join(e.log.Since(known)) + "\n"
	case "items":
		var min uint64
		if d.HasArg("min") {
			d.ScanArgs(t, "min", &min)
		}
		var b strings.Builder
		for _, it := range e.log.Items(min) {
			fmt.Fprintf(&b, "%d:%s ", it.Depth, e.name(it.ID))
		}
		return strings.TrimSpace(b.String()) + "\n"
	case "prepare":
		var author string
		var ts int64
		d.ScanArgs(t, "author", &author)
		d.ScanArgs(t, "ts", &ts)
		dr := e.log.Prepare(e.authors[author].Device.Public(), ts, Draft{Type: "message"})
		return fmt.Sprintf("room=%s seq=%d self=%s prev=[%s] depth=%d ts=%d\n",
			e.name(dr.Room), dr.Seq, e.name(dr.Self), e.join(dr.Prev), dr.Depth, dr.TS)
	case "status":
		var b strings.Builder
		for _, n := range e.list(d.CmdArgs[0].Key) {
			s, ok := e.log.Status(e.id(n))
			switch {
			case !ok:
				fmt.Fprintf(&b, "%s: not held\n", n)
			case s == StatusAccepted:
				fmt.Fprintf(&b, "%s: accepted\n", n)
			default:
				fmt.Fprintf(&b, "%s: rejected\n", n)
			}
		}
		return b.String()
	}
	d.Fatalf(t, "unknown command %q", d.Cmd)
	return ""
}

func (e *dagEnv) event(t *testing.T, d *datadriven.TestData) string {
	name := d.CmdArgs[0].Key
	var author string
	d.ScanArgs(t, "author", &author)
	id, ok := e.authors[author]
	if !ok {
		d.Fatalf(t, "unknown author %q", author)
	}
	arg := func(k string) (string, bool) {
		if !d.HasArg(k) {
			return "", false
		}
		var s string
		d.ScanArgs(t, k, &s)
		return s, true
	}
	num := func(k string) (int64, bool) {
		s, ok := arg(k)
		if !ok {
			return 0, false
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			d.Fatalf(t, "%s=%q: %v", k, s, err)
		}
		return n, true
	}
	dr := Draft{Type: "message", Body: []byte(name)}
	if s, ok := arg("type"); ok {
		dr.Type = s
	}
	if s, ok := arg("body"); ok {
		dr.Body = []byte(s)
	}
	var prev []string
	if s, ok := arg("prev"); ok {
		prev = e.list(s)
	}
	if s, ok := arg("auth"); ok {
		for _, n := range e.list(s) {
			dr.Auth = append(dr.Auth, e.id(n))
		}
	}
	if len(prev) == 0 {
		dr.Type = TypeCreate
		dr.Auth = nil
	} else {
		room, ok := arg("room")
		if !ok {
			room = e.roomOf(prev[0])
		}
		dr.Room = e.id(room)
		self, ok := arg("self")
		if !ok {
			self = e.latest(author, dr.Room)
		}
		if self != "" {
			dr.Self = e.id(self)
			dr.Seq = e.events[self].Seq + 1
			if !slices.Contains(prev, self) {
				prev = append(prev, self)
			}
		}
		for _, p := range prev {
			dr.Prev = append(dr.Prev, e.id(p))
			if pe, ok := e.events[p]; ok {
				dr.Depth = max(dr.Depth, pe.Depth+1)
				dr.TS = max(dr.TS, pe.TS+1)
			} else {
				dr.Depth = max(dr.Depth, 1)
			}
		}
	}
	if n, ok := num("seq"); ok {
		dr.Seq = uint64(n)
		if n == 0 {
			dr.Self = ""
		}
	}
	if n, ok := num("depth"); ok {
		dr.Depth = uint64(n)
	}
	if n, ok := num("ts"); ok {
		dr.TS = n
	}
	ev, err := Sign(id, dr)
	if err != nil {
		d.Fatalf(t, "sign %s: %v", name, err)
	}
	if e.authorOf == nil {
		e.authorOf = map[string]string{}
	}
	e.authorOf[name] = author
	e.events[name] = ev
	e.ids[name] = ev.ID
	e.names[ev.ID] = name
	return fmt.Sprintf("%s: room=%s seq=%d depth=%d ts=%d prev=[%s]\n",
		name, e.name(ev.Room), ev.Seq, ev.Depth, ev.TS, e.join(ev.Prev))
}

// latest returns the author's event of highest seq in room made so far.
func (e *dagEnv) latest(author string, room EventID) string {
	best := ""
	for n, a := range e.authorOf {
		ev := e.events[n]
		if a != author || ev.Room != room {
			continue
		}
		if best == "" || ev.Seq > e.events[best].Seq || (ev.Seq == e.events[best].Seq && n > best) {
			best = n
		}
	}
	return best
}

func (e *dagEnv) roomOf(name string) string {
	ev, ok := e.events[name]
	if !ok {
		return name
	}
	return e.name(ev.Room)
}

// id returns the id of a named event, or a forged id for an unknown name.
func (e *dagEnv) id(name string) EventID {
	if id, ok := e.ids[name]; ok {
		return id
	}
	id := IDOf([]byte("forged " + name))
	e.ids[name] = id
	e.names[id] = name
	return id
}

func (e *dagEnv) name(id EventID) string {
	if id == "" {
		return "-"
	}
	if n, ok := e.names[id]; ok {
		return n
	}
	return id.String()
}

func (e *dagEnv) list(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (e *dagEnv) join(ids []EventID) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = e.name(id)
	}
	return strings.Join(s, " ")
}

// names replaces CID strings in a reason by script names.
func (e *dagEnv) rename(s string) string {
	for id, n := range e.names {
		s = strings.ReplaceAll(s, id.String(), n)
	}
	return s
}

func (e *dagEnv) ready(r Ready) string {
	var b strings.Builder
	var acc []string
	for _, s := range r.Batch.Events {
		if s.Status == StatusAccepted {
			acc = append(acc, e.name(s.Event.ID))
		}
	}
	if len(acc) > 0 {
		fmt.Fprintf(&b, "accepted: %s\n", strings.Join(acc, " "))
	}
	for _, s := range r.Batch.Events {
		if s.Status == StatusRejected {
			fmt.Fprintf(&b, "rejected: %s (%s)\n", e.name(s.Event.ID), e.rename(s.Reason))
		}
	}
	if len(r.Batch.AddHeads)+len(r.Batch.RemoveHeads) > 0 {
		var hs []string
		for _, id := range r.Batch.AddHeads {
			hs = append(hs, "+"+e.name(id))
		}
		for _, id := range r.Batch.RemoveHeads {
			hs = append(hs, "-"+e.name(id))
		}
		fmt.Fprintf(&b, "heads: %s\n", strings.Join(hs, " "))
	}
	if len(r.Missing) > 0 {
		fmt.Fprintf(&b, "missing: %s\n", e.join(r.Missing))
	}
	for _, q := range r.Equivocations {
		fmt.Fprintf(&b, "equivocation: seq=%d %s %s\n", q.Seq, e.name(q.A), e.name(q.B))
	}
	for _, kv := range []struct {
		k string
		v int
	}{{"duplicates", r.Duplicates}, {"foreign", r.Foreign}, {"dropped", r.Dropped}} {
		if kv.v > 0 {
			fmt.Fprintf(&b, "%s: %d\n", kv.k, kv.v)
		}
	}
	if e.log.Pending() > 0 {
		fmt.Fprintf(&b, "pending: %d\n", e.log.Pending())
	}
	if b.Len() == 0 {
		return "nothing new\n"
	}
	// Accepted must mirror the batch.
	if len(acc) != len(r.Accepted) {
		return "BUG: Accepted does not mirror Batch\n"
	}
	return b.String()
}

func scriptIdentity(t testing.TB, name string) *Identity {
	t.Helper()
	seed := func(s string) []byte {
		b := make([]byte, 32)
		copy(b, s)
		return b
	}
	master, err := SecretKeyFromSeed(seed("master " + name))
	if err != nil {
		t.Fatal(err)
	}
	dev, err := SecretKeyFromSeed(seed("device " + name))
	if err != nil {
		t.Fatal(err)
	}
	return &Identity{User: master.Public(), Device: dev, Cert: CertifyDevice(master, dev.Public())}
}
