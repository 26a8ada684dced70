package rooms

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	"github.com/parley-p2p/parley/crdt"
)

// TestAuthFixtures runs the scripts in testdata/ (regenerate outputs with
// go test -run TestAuthFixtures -rewrite). Commands:
//
//	new-room creator=NAME [join-rule=private|public|knock] [dm=NAME]
//	do            one action per input line (see doAction); prints the outcome
//	state         members with membership, role and power; name, topic, join rule
//	visible [L..] visibility and reason of the labeled events (all when none given)
//	timeline      labels of the visible events in (depth, ID) order
//	redacted      labels of redacted events
//	devices       the member device set at the heads (encrypted rooms), by name
//	check         like do, but a pre-flight Room.Check against the current state
//	converge [orders=N] [seed=S]  replays all events in N random causal orders
//	              and compares state and timeline hashes and every reason
//
// Spec: docs/design.md §3 (R3-R6).
func TestAuthFixtures(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var w *world
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "new-room":
				var creator, jr, dm, hist string
				var enc bool
				d.ScanArgs(t, "creator", &creator)
				d.MaybeScanArgs(t, "join-rule", &jr)
				d.MaybeScanArgs(t, "dm", &dm)
				d.MaybeScanArgs(t, "e2ee", &enc)
				d.MaybeScanArgs(t, "history", &hist)
				body := CreateBody{JoinRule: jr, E2EE: enc, History: hist}
				if dm != "" {
					u := identity(t, dm).User
					body.DM = u[:]
				}
				w = newWorld(t, creator, body)
				return "ok\n"
			case "do", "check":
				var b strings.Builder
				for _, line := range strings.Split(d.Input, "\n") {
					line = strings.TrimSpace(line)
					if line == "" || strings.HasPrefix(line, "#") {
						continue
					}
					fmt.Fprintf(&b, "%s: %s\n", line, w.doAction(t, line, d.Cmd == "check"))
				}
				return b.String()
			case "state":
				return w.printState()
			case "visible":
				var labels []string
				for _, a := range d.CmdArgs {
					labels = append(labels, a.Key)
				}
				if len(labels) == 0 {
					for _, e := range w.events {
						labels = append(labels, w.nameOf(e.ID))
					}
				}
				var b strings.Builder
				for _, l := range labels {
					e := w.labels[l]
					if e == nil {
						t.Fatalf("no event %q", l)
					}
					ok, why := w.room.Visible(e.ID)
					if ok {
						fmt.Fprintf(&b, "%s: visible\n", l)
					} else {
						fmt.Fprintf(&b, "%s: hidden: %s\n", l, why)
					}
				}
				return b.String()
			case "timeline":
				var ls []string
				for _, id := range w.room.Timeline() {
					ls = append(ls, w.nameOf(id))
				}
				return strings.Join(ls, " ") + "\n"
			case "devices":
				var ls []string
				for _, rec := range w.room.MemberDevices(nil) {
					ls = append(ls, w.deviceName(rec.Device))
				}
				slices.Sort(ls)
				return strings.Join(ls, " ") + "\n"
			case "redacted":
				var ls []string
				for _, id := range w.room.Redactions() {
					ls = append(ls, w.nameOf(id))
				}
				return strings.Join(ls, " ") + "\n"
			case "converge":
				orders, seed := 20, uint64(1)
				d.MaybeScanArgs(t, "orders", &orders)
				d.MaybeScanArgs(t, "seed", &seed)
				if err := w.checkConverges(orders, seed); err != nil {
					return "DIVERGED: " + err.Error() + "\n"
				}
				return fmt.Sprintf("converged over %d orders\n", orders)
			}
			t.Fatalf("unknown command %q", d.Cmd)
			return ""
		})
	})
}

func (w *world) printState() string {
	st := w.room.State()
	var b strings.Builder
	fmt.Fprintf(&b, "join-rule: %s\n", st.JoinRule)
	if st.Name != "" {
		fmt.Fprintf(&b, "name: %s\n", st.Name)
	}
	if st.Topic != "" {
		fmt.Fprintf(&b, "topic: %s\n", st.Topic)
	}
	ms := slices.Clone(st.Members)
	slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(w.names[a.User], w.names[b.User]) })
	for _, m := range ms {
		p := strconv.FormatInt(m.Power, 10)
		if m.Creator {
			p = "inf"
		}
		fmt.Fprintf(&b, "%s: %s %s %s", w.names[m.User], m.Membership, m.Role, p)
		if m.DisplayName != "" {
			fmt.Fprintf(&b, " name=%q", m.DisplayName)
		}
		if m.Avatar != "" {
			fmt.Fprintf(&b, " avatar=%s", m.Avatar)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// doAction parses and performs one action:
//
//	USER invite|kick|ban|unban TARGET
//	USER join|leave|knock
//	USER member TARGET MEMBERSHIP          (raw member event)
//	USER power NAME=LEVEL... [invite=N kick=N ban=N redact=N state=N events=N users=N ev.TYPE=N]
//	USER name|topic|avatar|join-rule VALUE
//	USER profile [name=X] [avatar=Y]
//	USER say TEXT...
//	USER limits N [bytes=B] [work=D]       (room.limits: N events per device per minute,
//	                                        B bytes, join proof of work of D bits)
//	USER join|knock work=D                 (with proof of work minted to D bits; D=0: counter 0)
//	USER redact LABEL
//
// followed by options: as=LABEL, at=L1,L2 (parents instead of the heads),
// fork-of=LABEL (reuse that event's seq: equivocation), ts=N, blen=no
// (no signed body length where the room limits bytes),
// bad=unknown-parent|other-room-parent|unknown-auth|other-room|wrong-depth|no-auth.
// The outcome is "ok", "refused: REASON" or "hidden: REASON", followed by
// the events the change hid or showed.
func (w *world) doAction(t *testing.T, line string, check bool) string {
	f := strings.Fields(line)
	var o opts
	var label, bad string
	var args []string
	for _, x := range f[2:] {
		k, v, ok := strings.Cut(x, "=")
		switch {
		case ok && k == "as":
			label = v
		case ok && k == "at":
			for _, l := range strings.Split(v, ",") {
				e := w.labels[l]
				if e == nil {
					t.Fatalf("no event %q", l)
				}
				o.prev = append(o.prev, e)
			}
		case ok && k == "fork-of":
			o.forkOf = w.labels[v]
		case ok && k == "ts":
			n, _ := strconv.ParseInt(v, 10, 64)
			o.ts = &n
		case ok && k == "bad":
			bad = v
		case ok && k == "blen":
			o.noBLen = v == "no"
		default:
			args = append(args, x)
		}
	}
	name, verb := f[0], f[1]
	me := w.user(name)
	var typ string
	var skey *string
	var body []byte
	member := func(target, m string) {
		typ, skey = TypeMember, ptr(w.user(target).String())
		body = Encode(MemberBody{Membership: m})
	}
	switch verb {
	case "invite", "kick", "ban", "unban":
		m := map[string]string{"invite": Invite, "kick": Leave, "ban": Ban, "unban": Leave}[verb]
		member(args[0], m)
		if w.keys != nil && (verb == "kick" || verb == "ban") {
			w.keys.embedRemoval(name, args, &body, &o)
		}
	case "device", "rotate", "send", "fwd", "remove-device":
		if w.keys == nil {
			w.keys = newWorldKeys(w) // an unencrypted room: these events are refused
		}
		typ, skey, body = w.keys.action(name, verb, args, &o)
	case "join", "leave", "knock":
		member(name, verb)
		for _, a := range args {
			if v, ok := strings.CutPrefix(a, "work="); ok {
				d, err := strconv.Atoi(v)
				if err != nil {
					t.Fatalf("bad work %q", a)
				}
				body = Encode(MemberBody{Membership: verb, Work: MintWork(w.room.create.ID, me, d, 0, nil)})
			}
		}
	case "member":
		member(args[0], args[1])
	case "power":
		levels := w.levelsAt(o.prev)
		for _, a := range args {
			k, v, _ := strings.Cut(a, "=")
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("bad level %q", a)
			}
			switch {
			case k == "invite":
				levels.Invite = Lvl(n)
			case k == "kick":
				levels.Kick = Lvl(n)
			case k == "ban":
				levels.Ban = Lvl(n)
			case k == "redact":
				levels.Redact = Lvl(n)
			case k == "state":
				levels.StateDefault = Lvl(n)
			case k == "events":
				levels.EventsDefault = n
			case k == "users":
				levels.UsersDefault = n
			case strings.HasPrefix(k, "ev."):
				if levels.Events == nil {
					levels.Events = map[string]int64{}
				}
				levels.Events[strings.TrimPrefix(k, "ev.")] = n
			default:
				if levels.Users == nil {
					levels.Users = map[string]int64{}
				}
				levels.Users[w.user(k).String()] = n
			}
		}
		typ, skey, body = TypePower, ptr(""), Encode(levels)
	case "name", "topic", "avatar", "join-rule":
		typ = map[string]string{"name": TypeName, "topic": TypeTopic, "avatar": TypeAvatar, "join-rule": TypeJoinRule}[verb]
		skey, body = ptr(""), Encode(TextBody{Value: strings.Join(args, " ")})
	case "profile":
		var pb ProfileBody
		for _, a := range args {
			k, v, _ := strings.Cut(a, "=")
			if k == "name" {
				pb.DisplayName = v
			} else {
				pb.Avatar = v
			}
		}
		typ, skey, body = TypeProfile, ptr(me.String()), Encode(pb)
	case "say":
		typ, body = TypeMessage, Encode(MessageBody{Text: strings.Join(args, " ")})
	case "limits":
		n, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil {
			t.Fatalf("bad limit %q", args[0])
		}
		lb := LimitsBody{Messages: n}
		for _, a := range args[1:] {
			k, v, _ := strings.Cut(a, "=")
			x, err := strconv.ParseInt(v, 10, 64)
			if err != nil || (k != "bytes" && k != "work") {
				t.Fatalf("bad limit %q", a)
			}
			if k == "bytes" {
				lb.Bytes = x
			} else {
				lb.JoinWork = x
			}
		}
		typ, skey, body = TypeLimits, ptr(""), Encode(lb)
	case "redact":
		target := w.labels[args[0]]
		if target == nil {
			t.Fatalf("no event %q", args[0])
		}
		typ, body = TypeRedact, Encode(RedactBody{Target: []byte(target.ID)})
	default:
		t.Fatalf("unknown verb %q", verb)
	}
	if check {
		if err := w.room.Check(me, typ, skey, body); err != nil {
			return "refused: " + Reason(err)
		}
		return "ok"
	}
	switch bad {
	case "":
	case "unknown-parent":
		o.prev = append(o.prev, w.foreign(t, false))
	case "other-room-parent":
		o.prev = append(o.prev, w.foreign(t, true))
	case "unknown-auth":
		o.auth = append(w.room.AuthRefs(me, typ, skey), w.foreign(t, true).ID)
	case "no-auth":
		o.noAuth = true
	case "other-room":
		o.room = w.foreign(t, true).Room
	case "wrong-depth":
		d := uint64(1)
		o.depth = &d
	default:
		t.Fatalf("unknown bad=%q", bad)
	}
	e, delta := w.emit(name, typ, skey, body, o)
	if label == "" {
		label = fmt.Sprintf("e%d", len(w.events))
	}
	w.label(label, e)
	var out string
	if ok, why := w.room.Visible(e.ID); ok {
		out = "ok"
	} else if w.room.Accepted(e.ID) {
		out = "hidden: " + why
	} else {
		out = "refused: " + why
	}
	var hid, shown []string
	for _, id := range delta.Hidden {
		hid = append(hid, w.nameOf(id))
	}
	for _, id := range delta.Shown {
		if id != e.ID {
			shown = append(shown, w.nameOf(id))
		}
	}
	slices.Sort(hid)
	slices.Sort(shown)
	if len(hid) > 0 {
		out += " (hides " + strings.Join(hid, " ") + ")"
	}
	if len(shown) > 0 {
		out += " (shows " + strings.Join(shown, " ") + ")"
	}
	return out
}

// levelsAt returns a copy of the power levels at prev (or at the heads).
func (w *world) levelsAt(prev []*crdt.Event) PowerLevels {
	s := w.room.current()
	if prev != nil {
		var ps []int32
		for _, p := range prev {
			ps = append(ps, w.room.ids[p.ID])
		}
		s = w.room.stateAt(ps)
	}
	var pl PowerLevels
	if v := s.lookup(kPower); v >= 0 {
		if err := DecodeBody(w.room.evs[v].ev.Body, &pl); err != nil {
			w.t.Fatal(err)
		}
	}
	return pl
}

// foreign returns an event the room does not hold: from another room, or
// never delivered.
func (w *world) foreign(t *testing.T, otherRoom bool) *crdt.Event {
	id := w.id("mallory")
	c, err := crdt.Sign(id, crdt.Draft{Type: TypeCreate, TS: 7, Body: Encode(CreateBody{JoinRule: Public, History: HistoryShared})})
	if err != nil {
		t.Fatal(err)
	}
	if otherRoom {
		return c
	}
	e, err := crdt.Sign(id, crdt.Draft{Room: w.create.ID, Type: TypeMessage, Seq: 0, Prev: []crdt.EventID{w.create.ID},
		Auth: []crdt.EventID{w.create.ID}, Depth: 1, TS: 8, Body: Encode(MessageBody{Text: "never delivered"})})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// deviceName is the name of a device the world made ("bob.2"), sorted
// output being the caller's business.
func (w *world) deviceName(d crdt.DeviceID) string {
	for n, id := range w.ids {
		if id.Device.Public() == d {
			return n
		}
	}
	return d.String()
}
