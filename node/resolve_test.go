package node

import (
	"context"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/api"
)

func TestResolve(t *testing.T) {
	tn := newTestNet(t, 1)
	e := tn.reps[0].Engine
	ctx := context.Background()
	room := func(name string) string {
		r, err := e.CreateRoom(ctx, api.RoomCreateReq{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		return r.Room
	}
	general, dup1, dup2 := room("general"), room("dup"), room("dup")
	name := "Alice Example"
	if _, err := e.ProfileSet(ctx, api.ProfileSetReq{Name: &name}); err != nil {
		t.Fatal(err)
	}
	resolve := func(req api.ResolveReq) (api.ResolveResp, error) { return e.Resolve(ctx, req) }

	for _, s := range []string{"general", "GENERAL", general} {
		if r, err := resolve(api.ResolveReq{Room: s}); err != nil || r.Room != general {
			t.Errorf("room %q: %+v %v", s, r, err)
		}
	}
	if _, err := resolve(api.ResolveReq{Room: "dup"}); KindOf(err) != api.KindInvalid || !strings.Contains(err.Error(), dup1) || !strings.Contains(err.Error(), dup2) {
		t.Errorf("ambiguous room name: %v", err)
	}
	if _, err := resolve(api.ResolveReq{Room: "nowhere"}); KindOf(err) != api.KindNotFound {
		t.Errorf("unknown room name: %v", err)
	}
	user := e.ident.User.String()
	for _, s := range []string{name, "alice example", user} {
		if r, err := resolve(api.ResolveReq{Users: []string{s}}); err != nil || len(r.Users) != 1 || r.Users[0] != user {
			t.Errorf("user %q: %+v %v", s, r, err)
		}
	}
	if _, err := resolve(api.ResolveReq{Users: []string{"Bob"}}); KindOf(err) != api.KindNotFound {
		t.Errorf("unknown user name: %v", err)
	}

	// History lists a reference for every event, which resolves to it.
	for i := range 20 {
		if _, err := e.Send(ctx, api.SendReq{Room: general, Text: strings.Repeat("x", i+1)}); err != nil {
			t.Fatal(err)
		}
	}
	h, err := e.History(ctx, api.HistoryReq{Room: general})
	if err != nil {
		t.Fatal(err)
	}
	if h.Names[user] != name {
		t.Errorf("history names %v", h.Names)
	}
	seen := map[string]bool{}
	for _, ev := range h.Events {
		ref := h.Refs[ev.ID]
		if len(ref) < api.RefLen || seen[ref] || !strings.HasPrefix(ev.ID, idStart+ref) {
			t.Fatalf("event %s has reference %q", ev.ID, ref)
		}
		seen[ref] = true
		for _, s := range []string{ref, strings.ToUpper(ref), idStart + ref, ev.ID} {
			r, err := resolve(api.ResolveReq{Room: "general", Events: []string{s}})
			if err != nil || r.Events[0] != ev.ID {
				t.Fatalf("reference %q: %+v %v", s, r, err)
			}
		}
	}
	for _, s := range []string{"abc", "bafyrei", "abcdefg!", strings.Repeat("é", 9)} {
		if _, err := resolve(api.ResolveReq{Room: general, Events: []string{s}}); KindOf(err) != api.KindInvalid {
			t.Errorf("bad reference %q: %v", s, err)
		}
	}
	if _, err := resolve(api.ResolveReq{Room: general, Events: []string{"aaaaaaaaaaaaaaaa"}}); KindOf(err) != api.KindNotFound {
		t.Errorf("unknown reference: %v", err)
	}
	if _, err := resolve(api.ResolveReq{Events: []string{"aaaaaaaa"}}); KindOf(err) != api.KindInvalid {
		t.Errorf("a reference without its room: %v", err)
	}
}

// A reference is the shortest unshared prefix of at least RefLen; a shared
// one matches all that share it.
func TestRefs(t *testing.T) {
	all := []string{idStart + "aaaaaaaaaaaa", idStart + "aaaaaaaaaaab", idStart + "aaaaaaaabbbb", idStart + "zzzzzzzzzzzz"}
	got := refs(all, append(all, idStart+"notheld", "other"))
	want := map[string]string{all[0]: "aaaaaaaaaaaa", all[1]: "aaaaaaaaaaab", all[2]: "aaaaaaaab", all[3]: "zzzzzzzz"}
	if len(got) != len(want) {
		t.Fatalf("refs %v, want %v", got, want)
	}
	for id, r := range want {
		if got[id] != r {
			t.Errorf("ref of %s: %q, want %q", id, got[id], r)
		}
	}
	if m := matching(sortedTails(all), idStart+"aaaaaaaa"); len(m) != 3 {
		t.Errorf("matching: %v", m)
	}
}

// FuzzResolve: no input to resolve crashes the engine or resolves to
// something that is not one of the room's events.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{"", "general", "abcdefgh", "bafyreiabcdefgh", "\x00\xff", strings.Repeat("a", 100)} {
		f.Add(s, s)
	}
	tn := newTestNet(&testing.T{}, 1)
	defer tn.close()
	e := tn.reps[0].Engine
	r, err := e.CreateRoom(context.Background(), api.RoomCreateReq{Name: "general"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, room, ev string) {
		resp, err := e.Resolve(context.Background(), api.ResolveReq{Room: room, Events: []string{ev}, Users: []string{ev}})
		if err == nil && (resp.Room != r.Room || len(resp.Events) != 1) {
			t.Fatalf("resolve %q %q: %+v", room, ev, resp)
		}
	})
}
