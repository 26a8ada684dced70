package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parley-p2p/parley/api"
)

// The acceptance of issue 3 (room governance), checked through the CLI on
// three daemons per test. Every test has its own daemons.

const govTimeout = 30 * time.Second // one change reaches the other nodes

// TestGovInviteOnly: an uninvited user cannot join a private room; an
// invitee sees the invite in 'parley invites' and joins.
func TestGovInviteOnly(t *testing.T) {
	t.Parallel()
	a, b, c := trio(t, true)
	var rr api.RoomResp
	a.must(&rr, "room", "create", "--name", "inner circle")
	room := rr.Room

	refused(t, c.run("", "room", "join", room, "--via", a.addr), "an uninvited user joins a private room")

	var ev api.EventResp
	a.must(&ev, "room", "invite", room, b.user)
	eventually(t, govTimeout, "B sees the invite in 'parley invites'", func() error {
		inv, err := invites(b)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(inv, func(i api.Invite) bool { return i.Room == room })
		if i < 0 {
			return fmt.Errorf("B's invites: %+v", inv)
		}
		if inv[i].Inviter != a.user || inv[i].Name != "inner circle" {
			return fmt.Errorf("invite %+v: want inviter %s (A) and name %q", inv[i], a.user, "inner circle")
		}
		return nil
	})
	// A shares no room with B: the invite is a request, listed apart.
	var boxes api.InvitesResp
	b.must(&boxes, "invites")
	if len(boxes.Invites) != 0 || len(boxes.Requests) != 1 || boxes.Requests[0].Room != room {
		t.Fatalf("B's invites from stranger A: %+v, want one request", boxes)
	}
	if r := b.run("", "invites"); r.code != 0 || !strings.Contains(r.stdout, "no pending invites") || !strings.Contains(r.stdout, "1 invite requests from strangers") {
		t.Fatalf("'parley invites' with one request: %v", r)
	}
	if r := b.run("", "invites", "--requests"); r.code != 0 || !strings.Contains(r.stdout, room) {
		t.Fatalf("'parley invites --requests': %v", r)
	}
	// Accepting an invite needs no --via: the invite says where the room is.
	b.must(nil, "room", "join", room)
	waitMembership(t, []*daemon{a, b}, room, b.user, "join")
	b.must(nil, "send", room, "thanks for the invite")
	waitBodies(t, []*daemon{a}, room, "thanks for the invite")
	eventually(t, govTimeout, "the accepted invite leaves B's pending invites", func() error {
		inv, err := invites(b)
		if err != nil {
			return err
		}
		if slices.ContainsFunc(inv, func(i api.Invite) bool { return i.Room == room }) {
			return fmt.Errorf("B's invites still list %s after joining it: %+v", room, inv)
		}
		return nil
	})

	// C is still not invited.
	refused(t, c.run("", "send", room, "let me in"), "a non-member sends")
	if m := memberOf(t, a, room, c.user); m != nil && m.Membership == "join" {
		t.Fatalf("A's room info lists uninvited C as joined: %+v", *m)
	}
}

// TestGovProfiles: room name, topic and avatar (room set) and display names
// (profile set) set on one node appear on the others.
func TestGovProfiles(t *testing.T) {
	t.Parallel()
	a, b, c := trio(t, true)
	c.must(nil, "profile", "set", "--name", "Carol") // before joining
	room := publicRoom(t, a, b, c)

	avatar := filepath.Join(t.TempDir(), "avatar.png")
	if err := os.WriteFile(avatar, pngImage(t), 0o600); err != nil {
		t.Fatal(err)
	}
	a.must(nil, "room", "set", room, "--name", "Governance", "--topic", "who may do what", "--avatar", avatar)
	var bob api.ProfileResp
	b.must(&bob, "profile", "set", "--name", "Bob the Builder", "--avatar", avatar) // after joining
	if bob.User != b.user || bob.DisplayName != "Bob the Builder" || bob.Avatar == "" {
		t.Fatalf("profile set answered %+v; want user %s, the name and an avatar CID", bob, b.user)
	}

	var want api.RoomInfoResp
	a.must(&want, "room", "info", room)
	if want.Name != "Governance" || want.Topic != "who may do what" || want.Avatar == "" {
		t.Fatalf("A's own room info after room set: name %q topic %q avatar %q", want.Name, want.Topic, want.Avatar)
	}
	for _, d := range []*daemon{a, b, c} {
		eventually(t, govTimeout, d.name+" shows the room profile and display names", func() error {
			var info api.RoomInfoResp
			if err := d.try(&info, "room", "info", room); err != nil {
				return err
			}
			if info.Name != want.Name || info.Topic != want.Topic || info.Avatar != want.Avatar {
				return fmt.Errorf("name %q topic %q avatar %q; want %q %q %q", info.Name, info.Topic, info.Avatar, want.Name, want.Topic, want.Avatar)
			}
			for user, name := range map[string]string{b.user: "Bob the Builder", c.user: "Carol"} {
				m := findMember(info.Members, user)
				if m == nil || m.DisplayName != name {
					return fmt.Errorf("member %s: %+v, want display name %q", user, m, name)
				}
			}
			var p api.ProfileResp
			if err := d.try(&p, "profile", "get", b.user); err != nil {
				return err
			}
			if p.DisplayName != bob.DisplayName || p.Avatar != bob.Avatar {
				return fmt.Errorf("profile get B: %+v, want %+v", p, bob)
			}
			return nil
		})
	}
	r := c.run("", "room", "info", room)
	for _, s := range []string{"Governance", "who may do what", "Bob the Builder", "Carol"} {
		if r.code != 0 || !strings.Contains(r.stdout, s) {
			t.Errorf("C's 'room info' (human) lacks %q: %v", s, r)
		}
	}
}

// TestGovRoles: a member cannot kick; a moderator can kick a member but not
// the admin; roles show in room info.
func TestGovRoles(t *testing.T) {
	t.Parallel()
	a, b, c := trio(t, true)
	room := publicRoom(t, a, b, c)
	all := []*daemon{a, b, c}

	refused(t, b.run("", "room", "kick", room, c.user), "a member kicks")
	a.must(nil, "room", "role", room, b.user, "moderator")
	eventually(t, govTimeout, "every node shows the roles", func() error {
		for _, d := range all {
			var info api.RoomInfoResp
			if err := d.try(&info, "room", "info", room); err != nil {
				return err
			}
			want := map[string]func(m *api.MemberInfo) bool{
				a.user: func(m *api.MemberInfo) bool { return (m.Role == "admin" || m.Role == "creator") && m.Power >= 100 },
				b.user: func(m *api.MemberInfo) bool { return m.Role == "moderator" && m.Power == 50 },
				c.user: func(m *api.MemberInfo) bool { return m.Role == "member" && m.Power == 0 },
			}
			for user, ok := range want {
				if m := findMember(info.Members, user); m == nil || !ok(m) {
					return fmt.Errorf("%s: member %s is %+v (want A admin or creator with power >= 100, B moderator 50, C member 0)", d.name, user, m)
				}
			}
		}
		return nil
	})
	if r := a.run("", "room", "info", room); r.code != 0 || !strings.Contains(r.stdout, "moderator") {
		t.Errorf("'room info' (human) does not show the moderator role: %v", r)
	}

	refused(t, b.run("", "room", "kick", room, a.user), "a moderator kicks the admin")
	b.must(nil, "room", "kick", room, c.user, "--reason", "off topic")
	waitMembership(t, all, room, c.user, "leave")
	if m := memberOf(t, a, room, a.user); m == nil || m.Membership != "join" {
		t.Fatalf("the admin is not joined after the refused kick: %+v", m)
	}
	refused(t, c.run("", "send", room, "still here?"), "a kicked member sends")
}

// TestGovRedaction: sender and moderator redactions hide the body on every
// node, and the text is gone from every node's files.
func TestGovRedaction(t *testing.T) {
	t.Parallel()
	a, b, c := trio(t, true)
	room := publicRoom(t, a, b, c)
	all := []*daemon{a, b, c}
	a.must(nil, "room", "role", room, b.user, "moderator")
	waitRole(t, all, room, b.user, "moderator")

	own, mod := marker("sender-redacts"), marker("moderator-redacts")
	var e1, e2, e3 api.EventResp
	c.must(&e1, "send", room, own)
	c.must(&e2, "send", room, mod)
	a.must(&e3, "send", room, "the admin's message")
	waitBodies(t, all, room, own, mod, "the admin's message")

	for _, m := range []string{own, mod} {
		found := homesHolding(t, all, m)
		if !slices.Contains(found, c.name) {
			t.Fatalf("before the redaction, the marker %q is on the disks of %v but not on the sender C's: the disk check after the redaction would prove nothing (are bodies stored encrypted or compressed?)", m, found)
		}
		t.Logf("before the redaction, %q is on the disks of %v", m, found)
	}

	refused(t, c.run("", "redact", room, e3.Event), "a member redacts someone else's message")
	c.must(nil, "redact", room, e1.Event)
	b.must(nil, "redact", room, e2.Event, "--reason", "rude")

	for _, d := range all {
		eventually(t, govTimeout, d.name+" hides both redacted bodies", func() error {
			evs, err := d.history(room)
			if err != nil {
				return err
			}
			for _, id := range []string{e1.Event, e2.Event} {
				i := slices.IndexFunc(evs, func(e api.TimelineEvent) bool { return e.ID == id })
				switch {
				case i < 0:
					return fmt.Errorf("redacted message %s is missing from the timeline (want it marked \"redacted\": true)", id)
				case !evs[i].Redacted || evs[i].Body != "":
					return fmt.Errorf("message %s: redacted %v, body %q; want redacted and no body", id, evs[i].Redacted, evs[i].Body)
				}
			}
			for _, e := range evs {
				if strings.Contains(e.Body, own) || strings.Contains(e.Body, mod) {
					return fmt.Errorf("event %s still shows %q", e.ID, e.Body)
				}
			}
			if i := slices.IndexFunc(evs, func(e api.TimelineEvent) bool { return e.ID == e3.Event }); i < 0 || evs[i].Redacted || evs[i].Body != "the admin's message" {
				return fmt.Errorf("the admin's message, whose redaction was refused, is not shown intact")
			}
			return nil
		})
	}
	if r := a.run("", "history", room); r.code != 0 || !strings.Contains(r.stdout, "[redacted]") {
		t.Errorf("'history' (human) does not show [redacted]: %v", r)
	}
	eventually(t, 60*time.Second, "the redacted texts are gone from every node's files", func() error {
		for _, m := range []string{own, mod} {
			if found := homesHolding(t, all, m); len(found) > 0 {
				return fmt.Errorf("%q is still on the disks of %v", m, found)
			}
		}
		return nil
	})
}

// TestGovKickBan: a kicked member cannot send; a re-invited one can rejoin;
// a banned one cannot rejoin (until unbanned and invited again).
func TestGovKickBan(t *testing.T) {
	t.Parallel()
	a, b, c := trio(t, true)
	all := []*daemon{a, b, c}
	var rr api.RoomResp
	a.must(&rr, "room", "create", "--name", "private club")
	room := rr.Room
	for _, d := range []*daemon{b, c} {
		inviteAndJoin(t, a, d, room)
	}

	a.must(nil, "room", "kick", room, c.user, "--reason", "first warning")
	waitMembership(t, all, room, c.user, "leave")
	refused(t, c.run("", "send", room, "kicked but talking"), "a kicked member sends")

	inviteAndJoin(t, a, c, room)
	c.must(nil, "send", room, "back again")
	waitBodies(t, all, room, "back again")

	a.must(nil, "room", "ban", room, c.user, "--reason", "second strike")
	waitMembership(t, all, room, c.user, "ban")
	refused(t, c.run("", "send", room, "banned but talking"), "a banned member sends")
	refused(t, c.run("", "room", "join", room, "--via", a.addr), "a banned user rejoins")
	refused(t, a.run("", "room", "invite", room, c.user), "the admin invites a banned user")

	a.must(nil, "room", "unban", room, c.user)
	inviteAndJoin(t, a, c, room)
	c.must(nil, "send", room, "reformed")
	waitBodies(t, all, room, "reformed")
}

// TestGovBanDuringPartition: A bans C while C is cut off and keeps writing;
// after the heal, C's messages written concurrently with the ban are hidden
// on every node, C's own included.
func TestGovBanDuringPartition(t *testing.T) {
	t.Parallel()
	a, b, c := trio(t, false) // a line A-B-C: cutting B-C isolates C
	all := []*daemon{a, b, c}
	var rr api.RoomResp
	a.must(&rr, "room", "create", "--public", "--name", "partitioned")
	room := rr.Room
	b.must(nil, "room", "join", room, "--via", a.addr)
	c.must(nil, "room", "join", room, "--via", b.addr)
	waitMembership(t, all, room, c.user, "join")
	c.must(nil, "send", room, "C before the partition")
	waitBodies(t, all, room, "C before the partition")

	// Partition: both sides forget each other, so neither redials.
	c.must(nil, "disconnect", b.peerID)
	b.must(nil, "disconnect", c.peerID)
	eventually(t, govTimeout, "C is cut off from A and B", func() error {
		var pc, pb api.PeersResp
		if err := c.try(&pc, "peers"); err != nil {
			return err
		}
		if err := b.try(&pb, "peers"); err != nil {
			return err
		}
		if len(pc.Peers) != 0 || slices.ContainsFunc(pb.Peers, func(p api.PeerInfo) bool { return p.PeerID == c.peerID }) {
			return fmt.Errorf("C's peers %v; B's peers %v", pc.Peers, pb.Peers)
		}
		return nil
	})

	// C writes while A bans it and A writes too.
	var during []string
	for i := range 6 {
		during = append(during, fmt.Sprintf("C during the partition %02d", i))
	}
	var wg sync.WaitGroup
	var sendErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, m := range during {
			if err := c.try(nil, "send", room, m); err != nil {
				sendErr = err
				return
			}
		}
	}()
	a.must(nil, "room", "ban", room, c.user, "--reason", "while away")
	a.must(nil, "send", room, "A during the partition")
	wg.Wait()
	if sendErr != nil {
		t.Fatalf("C could not write while partitioned (it has not seen the ban): %v", sendErr)
	}
	if err := visibleBodies(c, room, during...); err != nil {
		t.Fatalf("before the heal, C does not show its own messages: %v", err)
	}

	c.must(nil, "connect", b.addr) // heal
	eventually(t, convergeTimeout, "all nodes hold the same events after the heal", func() error {
		return sameEvents(all, room)
	})
	for _, d := range all {
		eventually(t, govTimeout, d.name+" hides C's messages written concurrently with the ban", func() error {
			evs, err := d.history(room)
			if err != nil {
				return err
			}
			for _, e := range evs {
				if slices.Contains(during, e.Body) {
					return fmt.Errorf("%s shows %q (event %s), written concurrently with C's ban", d.name, e.Body, e.ID)
				}
			}
			return visibleBodies(d, room, "C before the partition", "A during the partition")
		})
		if m := memberOf(t, d, room, c.user); m == nil || m.Membership != "ban" {
			t.Errorf("%s: C's membership after the heal is %+v, want ban", d.name, m)
		}
	}
}

// TestGovDM: 'dm USER' returns the same two-person room every time, on
// both sides.
func TestGovDM(t *testing.T) {
	t.Parallel()
	a, b, c := trio(t, true)
	var r1, r2, r3, r4 api.RoomResp
	a.must(&r1, "dm", b.user)
	a.must(&r2, "dm", b.user)
	if r1.Room == "" || r2.Room != r1.Room {
		t.Fatalf("A's 'dm B' twice: %q then %q", r1.Room, r2.Room)
	}
	room := r1.Room
	eventually(t, govTimeout, "B learns of the DM room", func() error {
		var l api.RoomListResp
		if err := b.try(&l, "room", "list"); err != nil {
			return err
		}
		if slices.ContainsFunc(l.Rooms, func(s api.RoomSummary) bool { return s.Room == room }) {
			return nil
		}
		inv, err := invites(b)
		if err != nil {
			return err
		}
		if slices.ContainsFunc(inv, func(i api.Invite) bool { return i.Room == room }) {
			return nil
		}
		return fmt.Errorf("B's room list %+v and invites %+v lack %s", l.Rooms, inv, room)
	})
	b.must(&r3, "dm", a.user)
	b.must(&r4, "dm", a.user)
	if r3.Room != room || r4.Room != room {
		t.Fatalf("B's 'dm A' twice: %q, %q; want A's DM room %q", r3.Room, r4.Room, room)
	}
	b.must(nil, "send", room, "hi A, just us")
	waitBodies(t, []*daemon{a, b}, room, "hi A, just us")
	var info api.RoomInfoResp
	a.must(&info, "room", "info", room)
	var users []string
	for _, m := range info.Members {
		if m.Membership == "join" || m.Membership == "invite" {
			users = append(users, m.User)
		}
	}
	slices.Sort(users)
	want := []string{a.user, b.user}
	slices.Sort(want)
	if !slices.Equal(users, want) {
		t.Fatalf("the DM room's members are %+v, want just A and B", info.Members)
	}
	var other api.RoomResp
	a.must(&other, "dm", c.user)
	if other.Room == room || other.Room == "" {
		t.Fatalf("A's 'dm C' returned %q, A's DM room with B is %q", other.Room, room)
	}
}

// TestGovBlockAndInvitePolicy: a blocked user's messages are hidden for the
// blocker only; 'invites policy nobody' drops new invites.
func TestGovBlockAndInvitePolicy(t *testing.T) {
	t.Parallel()
	a, b, c := trio(t, true)
	room := publicRoom(t, a, b, c)

	var bl api.BlockedResp
	a.must(&bl, "block", c.user)
	a.must(&bl, "blocked")
	if !slices.Contains(bl.Blocked, c.user) {
		t.Fatalf("A's 'blocked' does not list C after 'block C': %v", bl.Blocked)
	}
	hidden := marker("blocked")
	c.must(nil, "send", room, hidden)
	waitBodies(t, []*daemon{b, c}, room, hidden) // others still see it
	b.must(nil, "send", room, "B after C")       // its parents include C's message
	waitBodies(t, []*daemon{a}, room, "B after C")
	evs, err := a.history(room)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if strings.Contains(e.Body, hidden) {
			t.Fatalf("A blocked C but shows C's message %s: %q", e.ID, e.Body)
		}
	}
	a.must(&bl, "unblock", c.user)
	waitBodies(t, []*daemon{a}, room, hidden)

	var pol api.PolicyResp
	b.must(&pol, "invites", "policy", "nobody")
	b.must(&pol, "invites", "policy")
	if pol.Policy != "nobody" {
		t.Fatalf("'invites policy' after 'invites policy nobody' says %q", pol.Policy)
	}
	var rr api.RoomResp
	a.must(&rr, "room", "create", "--name", "unwanted")
	unwanted := rr.Room
	a.must(nil, "room", "invite", unwanted, b.user)
	a.must(nil, "room", "invite", unwanted, c.user) // C (default policy, shares a room with A) gets it
	waitInvite(t, c, unwanted)
	// Fence: once B accepts invites again, a later invite arrives; the
	// dropped one must not come with it.
	b.must(&pol, "invites", "policy", "anyone")
	a.must(&rr, "room", "create", "--name", "wanted")
	a.must(nil, "room", "invite", rr.Room, b.user)
	waitInvite(t, b, rr.Room)
	inv, err := invites(b)
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(inv, func(i api.Invite) bool { return i.Room == unwanted }) {
		t.Fatalf("B's invites list %s, sent while B's policy was nobody: %+v", unwanted, inv)
	}
}

// trio starts A, B and C, with A-B and B-C connected, and A-C too with triangle.
func trio(t *testing.T, triangle bool) (a, b, c *daemon) {
	t.Helper()
	a, b, c = startDaemon(t, "A"), startDaemon(t, "B"), startDaemon(t, "C")
	a.must(nil, "connect", b.addr)
	b.must(nil, "connect", c.addr)
	if triangle {
		a.must(nil, "connect", c.addr)
	}
	return a, b, c
}

// publicRoom has a create a public room, the others join it, and waits until
// everybody sees everybody joined.
func publicRoom(t *testing.T, a *daemon, others ...*daemon) string {
	t.Helper()
	var rr api.RoomResp
	a.must(&rr, "room", "create", "--public", "--name", "town square")
	for _, d := range others {
		d.must(nil, "room", "join", rr.Room, "--via", a.addr)
	}
	all := append([]*daemon{a}, others...)
	for _, d := range others {
		waitMembership(t, all, rr.Room, d.user, "join")
	}
	return rr.Room
}

// inviteAndJoin has a invite d, d see the invite and join, and waits until
// both see d joined.
func inviteAndJoin(t *testing.T, a, d *daemon, room string) {
	t.Helper()
	a.must(nil, "room", "invite", room, d.user)
	waitInvite(t, d, room)
	d.must(nil, "room", "join", room, "--via", a.addr)
	waitMembership(t, []*daemon{a, d}, room, d.user, "join")
}

// invites are d's pending invites: the inbox (from contacts) and the
// requests (from strangers).
func invites(d *daemon) ([]api.Invite, error) {
	var r api.InvitesResp
	err := d.try(&r, "invites")
	return append(r.Invites, r.Requests...), err
}

func waitInvite(t *testing.T, d *daemon, room string) {
	t.Helper()
	eventually(t, govTimeout, d.name+" sees the invite to "+room, func() error {
		inv, err := invites(d)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(inv, func(i api.Invite) bool { return i.Room == room }) {
			return fmt.Errorf("%s's invites: %+v", d.name, inv)
		}
		return nil
	})
}

func findMember(ms []api.MemberInfo, user string) *api.MemberInfo {
	for i := range ms {
		if ms[i].User == user {
			return &ms[i]
		}
	}
	return nil
}

// memberOf is user's entry in d's room info (nil: not listed).
func memberOf(t *testing.T, d *daemon, room, user string) *api.MemberInfo {
	t.Helper()
	var info api.RoomInfoResp
	d.must(&info, "room", "info", room)
	return findMember(info.Members, user)
}

// waitMembership waits until every node's room info shows user with membership.
func waitMembership(t *testing.T, nodes []*daemon, room, user, membership string) {
	t.Helper()
	waitMember(t, nodes, room, user, "membership "+membership, func(m *api.MemberInfo) bool { return m.Membership == membership })
}

// waitRole waits until every node's room info shows user with role.
func waitRole(t *testing.T, nodes []*daemon, room, user, role string) {
	t.Helper()
	waitMember(t, nodes, room, user, "role "+role, func(m *api.MemberInfo) bool { return m.Role == role })
}

func waitMember(t *testing.T, nodes []*daemon, room, user, what string, ok func(m *api.MemberInfo) bool) {
	t.Helper()
	for _, d := range nodes {
		eventually(t, govTimeout, fmt.Sprintf("%s shows %s with %s", d.name, user, what), func() error {
			var info api.RoomInfoResp
			if err := d.try(&info, "room", "info", room); err != nil {
				return err
			}
			if m := findMember(info.Members, user); m == nil || !ok(m) {
				return fmt.Errorf("member entry %+v", m)
			}
			return nil
		})
	}
}

// visibleBodies checks that d's timeline shows every body (as a message, unredacted).
func visibleBodies(d *daemon, room string, bodies ...string) error {
	evs, err := d.history(room)
	if err != nil {
		return err
	}
	for _, b := range bodies {
		if !slices.ContainsFunc(evs, func(e api.TimelineEvent) bool { return e.Type == "message" && e.Body == b && !e.Redacted }) {
			return fmt.Errorf("%s does not show %q", d.name, b)
		}
	}
	return nil
}

func waitBodies(t *testing.T, nodes []*daemon, room string, bodies ...string) {
	t.Helper()
	for _, d := range nodes {
		eventually(t, govTimeout, d.name+" shows the messages", func() error { return visibleBodies(d, room, bodies...) })
	}
}

// sameEvents checks that all nodes hold the same events of room, with no gap.
func sameEvents(nodes []*daemon, room string) error {
	var ref api.SyncInfo
	for i, d := range nodes {
		var info api.RoomInfoResp
		if err := d.try(&info, "room", "info", room); err != nil {
			return err
		}
		s := info.Sync
		slices.Sort(s.Heads)
		if s.Missing != 0 || s.Pending != 0 {
			return fmt.Errorf("%s: %d missing, %d pending", d.name, s.Missing, s.Pending)
		}
		if i == 0 {
			ref = s
			continue
		}
		if s.Events != ref.Events || !slices.Equal(s.Heads, ref.Heads) {
			return fmt.Errorf("%s holds %d events with heads %v; %s holds %d with heads %v", d.name, s.Events, s.Heads, nodes[0].name, ref.Events, ref.Heads)
		}
	}
	return nil
}

// refused checks that a command failed with exit 1 and one "parley: " line.
func refused(t *testing.T, r cliResult, what string) {
	t.Helper()
	if r.code != 1 || !strings.HasPrefix(r.stderr, "parley: ") || strings.Count(r.stderr, "\n") != 1 || r.stdout != "" {
		t.Fatalf("%s: want exit 1 with one 'parley: ' line and no output; got %v", what, r)
	}
	t.Logf("%s: refused: %s", what, strings.TrimSpace(r.stderr))
}

// marker is a text that occurs nowhere else.
func marker(what string) string {
	b := make([]byte, 12)
	rand.Read(b)
	return "marker-" + what + "-" + hex.EncodeToString(b)
}

func pngImage(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	for i := range 8 {
		img.Set(i, i, color.RGBA{200, 30, 30, 255})
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// homesHolding names the nodes with a file under their home that contains
// text (every file, read as bytes: badger's .vlog, .sst and .mem included).
func homesHolding(t *testing.T, nodes []*daemon, text string) []string {
	t.Helper()
	var found []string
	for _, d := range nodes {
		err := filepath.WalkDir(d.home, func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil // removed while walking (compaction)
				}
				return err
			}
			if !e.Type().IsRegular() {
				return nil
			}
			ok, err := fileContains(path, []byte(text))
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			if ok {
				t.Logf("%q found in %s", text, path)
				found = append(found, d.name)
				return filepath.SkipAll
			}
			return nil
		})
		if err != nil {
			t.Fatalf("search %s's home: %v", d.name, err)
		}
	}
	return found
}

// Whence values of lseek that skip the holes of sparse files (badger
// preallocates its value log and memtable files).
const (
	seekData = 3
	seekHole = 4
)

// fileContains reports whether the file holds b. It reads every data
// extent; holes read as zeros and cannot hold b, which has no zero byte.
func fileContains(path string, b []byte) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	size := fi.Size()
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; {
		start, err := f.Seek(off, seekData)
		if errors.Is(err, syscall.ENXIO) {
			return false, nil // no data after off
		}
		if err != nil {
			start = off // no SEEK_DATA here: read everything
		}
		end, err := f.Seek(start, seekHole)
		if err != nil {
			end = size
		}
		if found, err := sectionContains(io.NewSectionReader(f, start, end-start), buf, b); found || err != nil {
			return found, err
		}
		off = end
	}
	return false, nil
}

func sectionContains(r io.Reader, buf, b []byte) (bool, error) {
	keep := 0 // bytes carried over from the previous read, to find b across reads
	for {
		n, err := io.ReadFull(r, buf[keep:])
		if bytes.Contains(buf[:keep+n], b) {
			return true, nil
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		keep = min(len(b)-1, keep+n)
		copy(buf, buf[len(buf)-keep:])
	}
}
