package e2e

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/transport/v3/stdnet"
	"github.com/pion/webrtc/v4"

	"github.com/parley-p2p/parley/api"
)

// stunLine is the STUN line of a daemon's banner.
var stunLine = regexp.MustCompile(`(?m)^stun     udp (\S+)( \(and TURN relay\))?$`)

// A call forced through the TURN relay of a third node carries media (issue
// 12): A and B, members of a room with R, which runs --turn, each ask their
// own daemon for the room's ICE servers (call.ice_servers), get R's relay
// with their own fresh credentials, and two pion peers with ICE transport
// policy "relay" exchange their SDP here in the test (signalling is not
// this test's concern). RTP flows both ways, both sides' selected pairs are
// relayed, and R's metrics count the allocations and the bytes. A stranger
// connected to R gets no relay for its own room, and none for ours.
func TestCallThroughTURNRelay(t *testing.T) {
	t.Parallel()
	a, b := startDaemon(t, "A"), startDaemon(t, "B")
	r := newDaemon(t, "R", t.TempDir())
	r.args = []string{"--turn"}
	r.start()
	s := startDaemon(t, "S")
	m := stunLine.FindStringSubmatch(r.log.String())
	if m == nil || m[2] == "" {
		t.Fatalf("R's banner names no STUN socket with a TURN relay:\n%s", r.log.String())
	}
	relayAddr := m[1]

	var rr api.RoomResp
	a.must(&rr, "room", "create", "--public", "--name", "calls")
	room := rr.Room
	b.must(nil, "room", "join", room, "--via", a.addr)
	r.must(nil, "room", "join", room, "--via", a.addr)
	b.must(nil, "connect", r.addr)
	s.must(nil, "connect", r.addr)
	waitMembership(t, []*daemon{a, b, r}, room, b.user, "join")
	waitMembership(t, []*daemon{a, b, r}, room, r.user, "join")

	ctx := context.Background()
	relayOf := func(d *daemon, room string) (all []webrtc.ICEServer, turn []webrtc.ICEServer, err error) {
		cl, err := api.NewClient(d.home)
		if err != nil {
			return nil, nil, err
		}
		resp, err := api.EpCallICEServers.Call(ctx, cl, api.CallICEServersReq{Room: room})
		if err != nil {
			return nil, nil, err
		}
		for _, s := range resp.ICEServers {
			is := webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential}
			all = append(all, is)
			if strings.HasPrefix(s.URLs[0], "turn:") {
				turn = append(turn, is)
			}
		}
		return all, turn, nil
	}
	servers := map[*daemon][]webrtc.ICEServer{}
	for _, d := range []*daemon{a, b} {
		eventually(t, convergeTimeout, d.name+" gets R's relay from call.ice_servers", func() error {
			all, turn, err := relayOf(d, room)
			if err != nil {
				return err
			}
			if len(turn) != 1 || turn[0].URLs[0] != "turn:"+relayAddr+"?transport=udp" || turn[0].Username == "" || turn[0].Credential == "" {
				return fmt.Errorf("ice servers %+v, want one relay at %s with credentials", all, relayAddr)
			}
			servers[d] = all
			return nil
		})
	}

	// The stranger: no relay for its own room from R, and no servers at
	// all for a room it is not in.
	var sr api.RoomResp
	s.must(&sr, "room", "create", "--public", "--name", "elsewhere")
	if _, turn, err := relayOf(s, sr.Room); err != nil || len(turn) != 0 {
		t.Fatalf("the stranger's own room: relays %+v, %v; want none", turn, err)
	}
	if _, _, err := relayOf(s, room); err == nil {
		t.Fatal("the stranger got ICE servers for a room it is not in")
	}

	pa, gotA := newRelayPeer(t, servers[a])
	pb, gotB := newRelayPeer(t, servers[b])
	start := time.Now()
	offer, err := pa.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	pa.SetLocalDescription(offer)
	<-webrtc.GatheringCompletePromise(pa)
	if err := pb.SetRemoteDescription(*pa.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	answer, err := pb.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	pb.SetLocalDescription(answer)
	<-webrtc.GatheringCompletePromise(pb)
	if err := pa.SetRemoteDescription(*pb.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	for _, sdp := range []string{pa.LocalDescription().SDP, pb.LocalDescription().SDP} {
		if strings.Contains(sdp, "typ host") || strings.Contains(sdp, "typ srflx") || !strings.Contains(sdp, "typ relay") {
			t.Fatalf("an SDP with candidates other than relayed ones:\n%s", sdp)
		}
	}
	eventually(t, convergeTimeout, "the first RTP both ways through R's relay", func() error {
		if x, y := gotA.Load(), gotB.Load(); x == 0 || y == 0 {
			return fmt.Errorf("A received %d packets, B %d", x, y)
		}
		return nil
	})
	t.Logf("offer to first RTP both ways through the relay (gathering included): %v", time.Since(start).Round(time.Millisecond))
	const want = 50
	eventually(t, convergeTimeout, "RTP both ways through R's relay", func() error {
		if x, y := gotA.Load(), gotB.Load(); x < want || y < want {
			return fmt.Errorf("A received %d packets, B %d; want %d each", x, y, want)
		}
		return nil
	})
	for name, pc := range map[string]*webrtc.PeerConnection{"A": pa, "B": pb} {
		pair, err := pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
		if err != nil || pair == nil || pair.Local.Typ != webrtc.ICECandidateTypeRelay || pair.Remote.Typ != webrtc.ICECandidateTypeRelay {
			t.Fatalf("%s's selected pair %v (%v), want relay to relay", name, pair, err)
		}
		if got := fmt.Sprint(pair.Local.Address, ":", pair.Local.Port); !strings.HasPrefix(relayAddr, pair.Local.Address+":") {
			t.Fatalf("%s relays through %s, not R (%s)", name, got, relayAddr)
		}
	}
	info := apiInfo(t, r)
	eventually(t, convergeTimeout, "R's metrics count the allocations and the bytes", func() error {
		mr, code, err := scrape(info.URL+api.MetricsPath, info.Token)
		if err != nil || code != 200 {
			return fmt.Errorf("scrape: %d %v", code, err)
		}
		if mr["parley_turn_allocations"] < 2 || mr["parley_turn_relayed_bytes_total"] < 2*want*100 || mr[`parley_turn_credentials_total{result="issued"}`] < 2 {
			return fmt.Errorf("allocations %v, relayed %v bytes, credentials %v", mr["parley_turn_allocations"], mr["parley_turn_relayed_bytes_total"], mr[`parley_turn_credentials_total{result="issued"}`])
		}
		return nil
	})
}

// loopNet is pion's network with the TURN client's sockets on loopback
// (pion/ice binds them to every interface).
type loopNet struct{ *stdnet.Net }

func (n loopNet) ListenPacket(network, address string) (net.PacketConn, error) {
	if port, ok := strings.CutPrefix(address, "0.0.0.0:"); ok {
		address = "127.0.0.1:" + port
	}
	return n.Net.ListenPacket(network, address)
}

// newRelayPeer is a pion peer that uses only relayed candidates and sends
// an Opus track of small RTP packets every 20 ms until the test ends; got
// counts the RTP packets it receives.
func newRelayPeer(t *testing.T, servers []webrtc.ICEServer) (*webrtc.PeerConnection, *atomic.Int64) {
	t.Helper()
	std, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	var se webrtc.SettingEngine
	se.SetNet(loopNet{std})
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	var me webrtc.MediaEngine
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(&me), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{
		ICEServers: servers, ICETransportPolicy: webrtc.ICETransportPolicyRelay,
	})
	if err != nil {
		t.Fatal(err)
	}
	// A data channel too, so that the SCTP transport (and through it the
	// selected ICE pair) is there to look at.
	if _, err := pc.CreateDataChannel("probe", nil); err != nil {
		t.Fatal(err)
	}
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "parley")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTrack(track); err != nil {
		t.Fatal(err)
	}
	got := &atomic.Int64{}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			got.Add(1)
		}
	})
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		payload := make([]byte, 160)
		for seq := uint16(0); ; seq++ {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq, Timestamp: uint32(seq) * 960}, Payload: payload})
		}
	}()
	t.Cleanup(func() {
		close(done)
		<-stopped
		pc.Close()
	})
	return pc, got
}
