package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/api"
)

// The acceptance of issue 4's devices and verification through the CLI:
// both sides of `verify` print the same safety number; a device linked
// later (`device link` / `device join`) reads the room's shared history,
// takes part in it, and a replayed code is refused; `device list` shows
// both devices; `device revoke` removes the linked device.
func TestDevicesLinkAndVerify(t *testing.T) {
	t.Parallel()
	a, b := startDaemon(t, "A"), startDaemon(t, "B")
	a.must(nil, "connect", b.addr)
	var rr api.RoomResp
	a.must(&rr, "room", "create", "--name", "devices") // private: encrypted, shared history
	room := rr.Room
	a.must(nil, "room", "invite", room, b.user)
	b.must(nil, "room", "join", room, "--via", a.addr)
	waitMembership(t, []*daemon{a, b}, room, b.user, "join")
	fromA, fromB := marker("from-a"), marker("from-b")
	a.must(nil, "send", room, fromA)
	waitBodies(t, []*daemon{b}, room, fromA)
	b.must(nil, "send", room, fromB)
	waitBodies(t, []*daemon{a}, room, fromB)

	// verify: the same safety number and emoji on both sides.
	var va, vb api.VerifyResp
	a.must(&va, "verify", b.user)
	b.must(&vb, "verify", a.user)
	if va.SafetyNumber == "" || va.SafetyNumber != vb.SafetyNumber || strings.Join(va.Emoji, " ") != strings.Join(vb.Emoji, " ") {
		t.Fatalf("A prints %q %v, B prints %q %v", va.SafetyNumber, va.Emoji, vb.SafetyNumber, vb.Emoji)
	}
	if human := a.run("", "verify", b.user); human.code != 0 || !strings.Contains(human.stdout, strings.Join(strings.Fields(va.SafetyNumber)[:4], " ")) {
		t.Fatalf("verify for people: %v", human)
	}
	a.must(nil, "verify", b.user, "--confirm")
	if m := memberOf(t, a, room, b.user); m == nil || !m.Verified {
		t.Fatalf("room info does not mark b verified: %+v", m)
	}

	// Link a second device of A's user on a fresh home.
	var code api.DeviceLinkResp
	a.must(&code, "device", "link")
	if !strings.HasPrefix(code.Code, "parley-link-") {
		t.Fatalf("code %q", code.Code)
	}
	a2 := newDaemon(t, "A2", t.TempDir())
	var jr api.DeviceJoinResult
	a2.must(&jr, "device", "join", code.Code)
	if jr.User != a.user || len(jr.Rooms) != 1 || jr.Rooms[0] != room {
		t.Fatalf("join result %+v", jr)
	}
	refused(t, runCLI(t.TempDir(), "", "device", "join", code.Code), "a used code joins another home")
	refused(t, a2.run("", "device", "join", code.Code), "a linked home joins again")
	a2.start()
	if a2.user != a.user {
		t.Fatalf("the linked daemon is user %s, want %s", a2.user, a.user)
	}
	refused(t, a2.run("", "device", "link"), "a linked device issues a code")
	waitBodies(t, []*daemon{a2}, room, fromA, fromB) // the shared history
	fromA2 := marker("from-a2")
	a2.must(nil, "send", room, fromA2)
	waitBodies(t, []*daemon{a, b}, room, fromA2)

	var dl api.DeviceListResp
	eventually(t, govTimeout, "device list shows both devices", func() error {
		if err := a.try(&dl, "device", "list"); err != nil {
			return err
		}
		if len(dl.Devices) != 2 || !dl.Devices[0].Current {
			return fmt.Errorf("devices %+v", dl.Devices)
		}
		return nil
	})
	linked := dl.Devices[1].Device
	var rv api.DeviceRevokeResp
	a.must(&rv, "device", "revoke", linked)
	if rv.Device != linked || len(rv.Events) != 1 {
		t.Fatalf("revoke %+v", rv)
	}
	after := marker("after-revoke")
	eventually(t, govTimeout, "b drops the revoked device", func() error {
		var info api.RoomInfoResp
		if err := b.try(&info, "room", "info", room); err != nil {
			return err
		}
		for _, d := range info.Devices {
			if d == linked {
				return fmt.Errorf("devices %v", info.Devices)
			}
		}
		return nil
	})
	b.must(nil, "send", room, after)
	waitBodies(t, []*daemon{a}, room, after)
	eventually(t, govTimeout, "the revoked device holds the later message, undecrypted", func() error {
		evs, err := a2.history(room)
		if err != nil {
			return err
		}
		sealed := 0
		for _, e := range evs {
			if e.Body == after {
				t.Fatalf("the revoked device reads %+v", e)
			}
			if e.Type == "message" && e.Sender == b.user && !e.Decrypted {
				sealed++
			}
		}
		if sealed == 0 {
			return fmt.Errorf("no undecrypted message from b among %d events", len(evs))
		}
		return nil
	})
	if got := homesHolding(t, []*daemon{a2}, after); len(got) > 0 {
		t.Fatalf("plaintext after the revocation on the revoked device's disk")
	}
}
