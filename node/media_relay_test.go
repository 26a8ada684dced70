package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/media"
	"github.com/parley-p2p/parley/node/mediasvc"
)

// Pull-through on a line author – host – member: the host keeps the
// member's encrypted room without its keys and holds none of the file; the
// member, not connected to the author, fetches it through the host, which
// then holds ciphertext blocks only. A peer that shares no room with the
// host gets not-found, and the host fetches nothing for it.
func TestMediaPullThroughBlindHost(t *testing.T) {
	const author, host, member, outsider = 0, 1, 2, 3
	mn := newMediaNet(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), convergeWithin)
	defer cancel()

	// The member's encrypted room, kept by the host (no membership).
	mn.link(member, host)
	r, err := mn.reps[member].Engine.CreateRoom(ctx, api.RoomCreateReq{Name: "pull-through"})
	if err != nil {
		t.Fatal(err)
	}
	hostEng := mn.reps[host].Engine
	if _, err := hostEng.TrackRoom(ctx, r.Room); err != nil {
		t.Fatal(err)
	}
	mn.reps[host].SyncNow(ctx)
	memberDev, err := deviceOfPeer(mn.reps[member].host.ID())
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, convergeWithin, "the host knows the member's device", func() (bool, string) {
		u, ok := hostEng.UserOfDevice(ctx, memberDev)
		return ok && u == mn.ids[member].User, ""
	})
	outsiderDev, err := deviceOfPeer(mn.reps[outsider].host.ID())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := hostEng.UserOfDevice(ctx, outsiderDev); ok {
		t.Fatal("the host maps the outsider's device to a member")
	}
	mn.media[host].SetRelayPolicy(relayPolicy(hostEng))

	mn.link(author, host)
	mn.link(outsider, host)
	marker := []byte("PLAINTEXT-MARKER ")
	data := bytes.Repeat(marker, (3<<20)/len(marker)+1) // manifest + 4 blocks
	key, err := media.NewFileKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blob, err := media.Import(mn.stores[author], bytes.NewReader(data), key)
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := media.Blocks(mn.stores[author], blob.Root)
	if err != nil || len(blocks) != 4 {
		t.Fatalf("%d blocks, %v", len(blocks), err)
	}
	if slices.Contains(mn.reps[member].host.Network().Peers(), mn.reps[author].host.ID()) {
		t.Fatal("the member is connected to the author")
	}

	if err := mn.media[member].Fetch(ctx, blob.Root); err != nil {
		t.Fatalf("fetch through the host: %v", err)
	}
	if got := readBlob(t, mn.stores[member], blob.Root, key); !bytes.Equal(got, data) {
		t.Fatal("the file fetched through the host differs")
	}
	if n := mn.media[host].Pulled(); n != int64(len(blocks))+1 {
		t.Fatalf("the host pulled %d blocks through, want %d", n, len(blocks)+1)
	}
	if miss, err := media.Missing(mn.stores[host], blob.Root); err != nil || len(miss) != 0 {
		t.Fatalf("the host misses %d blocks it pulled (%v)", len(miss), err)
	}
	_ = mn.stores[host].List(func(c cid.Cid) bool {
		b, _ := mn.stores[host].Get(c)
		if bytes.Contains(b, marker) {
			t.Errorf("the host holds plaintext in %s", c)
		}
		return true
	})
	// What the host pulled survives its GC within the grace period.
	if _, err := mn.media[host].Collect(nil, api.MediaGCGrace); err != nil {
		t.Fatal(err)
	}
	if miss, err := media.Missing(mn.stores[host], blob.Root); err != nil || len(miss) != 0 {
		t.Fatalf("the host's GC dropped %d pulled blocks (%v)", len(miss), err)
	}

	// The outsider shares no room with the host.
	other, _, _ := mn.addBlob(author, 2<<20)
	pulled, served := mn.media[host].Pulled(), mn.media[author].Served()
	err = mn.media[outsider].Fetch(ctx, other.Root)
	if !errors.Is(err, mediasvc.ErrNotFound) {
		t.Fatalf("the outsider's fetch: %v, want not found", err)
	}
	if n := mn.media[host].Pulled() - pulled; n != 0 {
		t.Fatalf("the host pulled %d blocks for the outsider", n)
	}
	if n := mn.media[author].Served() - served; n != 0 {
		t.Fatalf("the author served %d blocks to the host for the outsider", n)
	}
	if ok, _ := mn.stores[host].Has(other.Root); ok {
		t.Fatal("the host holds a block of the outsider's blob")
	}

	// The host's copy is a cache: collected once the grace period is over.
	mn.media[host].SetClock(func() time.Time { return time.Now().Add(2 * api.MediaGCGrace) })
	if _, err := mn.media[host].Collect(nil, api.MediaGCGrace); err != nil {
		t.Fatal(err)
	}
	if ok, _ := mn.stores[host].Has(blob.Root); ok {
		t.Fatal("the host kept a pulled block past the grace period")
	}
}
