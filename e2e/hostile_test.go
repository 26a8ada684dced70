package e2e

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/node/mediasvc"
	"github.com/parley-p2p/parley/node/p2p"
)

// TestHostilePeersMemory (issue 17, item 1): 1,000 fresh libp2p
// identities (100 with -short), 50 at a time, each open 4 streams on every
// protocol of a running daemon and on each send the length prefix of a
// frame of 4 MiB minus one octet and 16 KiB of its body, then wait up to 5
// seconds for the daemon to end the stream. The daemon's peak resident
// memory (VmHWM) must stay under 150 MB, and afterwards it still serves an
// honest peer: a second daemon joins a room through it and reads its
// history.
func TestHostilePeersMemory(t *testing.T) {
	t.Parallel()
	const (
		workers  = 50
		perProto = 4
		body     = 16 << 10
		hold     = 5 * time.Second
		peakMax  = 150 << 20
	)
	identities := 1000
	if testing.Short() {
		identities = 100
	}
	a := startDaemon(t, "A")
	var rr api.RoomResp
	a.must(&rr, "room", "create", "--public", "--name", "under siege")
	a.must(nil, "send", rr.Room, "before the siege")
	pid := a.cmd.Process.Pid
	hwm0, rss0 := procMemory(t, pid)

	target, err := peer.AddrInfoFromString(a.addr)
	if err != nil {
		t.Fatal(err)
	}
	protos := []protocol.ID{p2p.SyncProtocol, mediasvc.Protocol, p2p.InviteProtocol, p2p.LinkProtocol, p2p.RoomProofProtocol}
	frame := binary.AppendUvarint(nil, 4<<20-1)
	frame = append(frame, make([]byte, body)...)
	start := time.Now()
	var opened, ended [5]int
	type result struct{ opened, ended [5]int }
	results := make([]result, identities)
	errs := parallel(identities, workers, func(i int) error {
		h, err := libp2p.New(libp2p.NoListenAddrs, libp2p.Transport(tcp.NewTCPTransport),
			libp2p.ResourceManager(&network.NullResourceManager{}), libp2p.DisableRelay())
		if err != nil {
			return err
		}
		defer h.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := h.Connect(ctx, *target); err != nil {
			return nil // refused (a connection limit): as good as ended
		}
		var sts []network.Stream
		var which []int
		deadline := time.Now().Add(hold)
		for k, p := range protos {
			for range perProto {
				st, err := h.NewStream(ctx, target.ID, p)
				if err != nil {
					continue
				}
				results[i].opened[k]++
				st.SetDeadline(deadline)
				if _, err := st.Write(frame); err != nil {
					results[i].ended[k]++
					st.Reset()
					continue
				}
				sts, which = append(sts, st), append(which, k)
			}
		}
		for j, st := range sts {
			if _, err := io.Copy(io.Discard, st); !isTimeout(err) {
				results[i].ended[which[j]]++
			}
			st.Reset()
		}
		return nil
	})
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range results {
		for k := range protos {
			opened[k] += r.opened[k]
			ended[k] += r.ended[k]
		}
	}
	hwm, rss := procMemory(t, pid)
	t.Logf("%d hostile identities in %v; streams opened %v, ended by the daemon before %v: %v (sync, media, invite, link, room proof)",
		identities, time.Since(start).Round(time.Millisecond), opened, hold, ended)
	t.Logf("daemon memory: before VmHWM %d MB VmRSS %d MB; after VmHWM %d MB VmRSS %d MB (limit %d MB)",
		hwm0>>20, rss0>>20, hwm>>20, rss>>20, peakMax>>20)
	if hwm > peakMax {
		t.Errorf("daemon peak resident memory %d MB under hostile peers, want under %d MB", hwm>>20, peakMax>>20)
	}
	if !a.running() {
		t.Fatalf("daemon died: %v", a.exitErr)
	}

	// An honest peer is still served.
	b := startDaemon(t, "B")
	b.must(nil, "room", "join", rr.Room, "--via", a.addr)
	waitBodies(t, []*daemon{b}, rr.Room, "before the siege")
}

// procMemory returns a process's peak and current resident set (VmHWM,
// VmRSS) in octets.
func procMemory(t *testing.T, pid int) (hwm, rss int64) {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmHWM" && k != "VmRSS") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			t.Fatalf("/proc/%d/status %s: %v", pid, k, err)
		}
		if k == "VmHWM" {
			hwm = kb << 10
		} else {
			rss = kb << 10
		}
	}
	if hwm == 0 || rss == 0 {
		t.Fatalf("/proc/%d/status has no VmHWM or VmRSS", pid)
	}
	return hwm, rss
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}
