package calls

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/ivfwriter"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"
)

// MaxPeers is the most devices in one full-mesh call, this one included.
const MaxPeers = 8

// FailedGrace is how long a peer whose connection failed is kept before it
// is dropped (docs/protocol.md 5.3).
const FailedGrace = 30 * time.Second

// Signalling operations (as api.CallOpX).
const (
	OpOffer     = "offer"
	OpAnswer    = "answer"
	OpCandidate = "candidate"
	OpHangup    = "hangup"
	OpDecline   = "decline"
)

// reoffer is how long an offer waits for its answer before it is sent again.
const reoffer = 5 * time.Second

// maxEarly bounds the candidates kept of a device before its offer.
const maxEarly = 64

// Device is a call participant: a user and one of its devices, as the API
// prints them.
type Device struct{ User, Device string }

// String is "USER/DEVICE", the key glare is resolved by.
func (d Device) String() string { return d.User + "/" + d.Device }

// Signal is a signalling message addressed to this device.
type Signal struct {
	From           Device
	Op             string
	SDP, Candidate string
}

// Signaller sends one signalling message to one device of the call.
type Signaller interface {
	Signal(ctx context.Context, to Device, op, sdp, candidate string) error
}

// Config is what a Call needs.
type Config struct {
	Self      Device
	Signaller Signaller
	Send      string // audio file to send in a loop ("": silence)
	Record    string // directory to record into ("": none)
	Video     bool   // send and receive video too
	// SendVideo is a VP8 video (IVF file) sent in a loop in a video call
	// ("": a generated test pattern).
	SendVideo string
	// ICEServers are STUN/TURN servers (none: host candidates only).
	ICEServers []webrtc.ICEServer
	// Loopback keeps ICE on loopback addresses (tests, and a daemon that
	// listens only there).
	Loopback bool
	// FailedGrace replaces FailedGrace (tests).
	FailedGrace time.Duration
	Log         *slog.Logger
}

// PeerStats is what one remote device's session did.
type PeerStats struct {
	Device             Device
	State              string
	PacketsIn, BytesIn int64
	Offered            bool // this device sent the session's offer
	// FirstRTP is the time from the session's first signal (the offer sent
	// or received) to its first RTP packet in; 0 before one came.
	FirstRTP time.Duration
}

// Call is this device's peer in one call.
type Call struct {
	cfg   Config
	api   *webrtc.API
	src   *source
	track *webrtc.TrackLocalStaticSample
	// vsrc and vtrack are the video sent (a video call only).
	vsrc   *source
	vtrack *webrtc.TrackLocalStaticSample
	log    *slog.Logger

	inbox chan func()
	done  chan struct{} // closed when Serve returns

	// owned by the Serve goroutine
	peers map[string]*peer
	early map[string][]webrtc.ICECandidateInit

	wg      sync.WaitGroup // readers and the sender
	refused atomic.Int64   // sessions the stack closed (Refused)
}

// Refused counts the sessions the WebRTC stack closed by itself: DTLS
// refused them (the certificate does not match the SDP's fingerprint) or
// they broke for good.
func (c *Call) Refused() int64 { return c.refused.Load() }

type peer struct {
	dev      Device
	pc       *webrtc.PeerConnection
	start    time.Time
	remote   bool // remote description set
	offered  bool // this side offered
	pending  []webrtc.ICECandidateInit
	state    webrtc.PeerConnectionState
	failedAt time.Time
	in       *counters
}

type counters struct {
	packets, bytes atomic.Int64
	first          atomic.Int64 // ns since start; 0 none
}

// New prepares a call peer; Serve runs it.
func New(cfg Config) (*Call, error) {
	if cfg.Signaller == nil || cfg.Self.User == "" || cfg.Self.Device == "" {
		return nil, errors.New("calls: a call needs its device and a signaller")
	}
	if cfg.FailedGrace == 0 {
		cfg.FailedGrace = FailedGrace
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	src, err := openSource(cfg.Send)
	if err != nil {
		return nil, err
	}
	if cfg.Record != "" {
		if st, err := osStat(cfg.Record); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("calls: record directory %s: not a directory", cfg.Record)
		}
	}
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, fmt.Errorf("calls: codecs: %w", err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, fmt.Errorf("calls: interceptors: %w", err)
	}
	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	// A ClientHello that reaches the other side before its DTLS transport
	// listens is lost; retrying after 1 s (the default) made one call setup
	// in ten take over a second on loopback.
	se.SetDTLSRetransmissionInterval(100 * time.Millisecond)
	// Checks from the other side often arrive before its candidates do, so
	// the first working pair is peer-reflexive; pion waits 1 s before
	// nominating one of those by default.
	se.SetPrflxAcceptanceMinWait(50 * time.Millisecond)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	if cfg.Loopback {
		se.SetIncludeLoopbackCandidate(true)
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	}
	track, err := webrtc.NewTrackLocalStaticSample(src.codec, "audio", "parley-"+short(cfg.Self.Device))
	if err != nil {
		return nil, fmt.Errorf("calls: track: %w", err)
	}
	var vsrc *source
	var vtrack *webrtc.TrackLocalStaticSample
	if cfg.Video {
		if vsrc, err = openVideo(cfg.SendVideo); err != nil {
			return nil, err
		}
		if vtrack, err = webrtc.NewTrackLocalStaticSample(vsrc.codec, "video", "parley-"+short(cfg.Self.Device)); err != nil {
			return nil, fmt.Errorf("calls: video track: %w", err)
		}
	}
	return &Call{
		cfg: cfg, src: src, track: track, vsrc: vsrc, vtrack: vtrack, log: cfg.Log,
		api:   webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)),
		inbox: make(chan func(), 1024), done: make(chan struct{}),
		peers: map[string]*peer{}, early: map[string][]webrtc.ICECandidateInit{},
	}, nil
}

// post runs fn on the Serve goroutine; it never blocks once Serve ended.
func (c *Call) post(fn func()) {
	select {
	case c.inbox <- fn:
	case <-c.done:
	}
}

// Join offers a session to each device already in the call (the joiner's
// part of the mesh rules).
func (c *Call) Join(devs []Device) {
	c.post(func() {
		for _, d := range devs {
			if d == c.cfg.Self || c.peers[d.String()] != nil {
				continue
			}
			c.offer(d)
		}
	})
}

// Receive takes in a signal addressed to this device.
func (c *Call) Receive(s Signal) { c.post(func() { c.receive(s) }) }

// Drop ends the session with a device that left the call.
func (c *Call) Drop(d Device) { c.post(func() { c.drop(d.String(), "left") }) }

// Stats reports each session, sorted by device.
func (c *Call) Stats(ctx context.Context) []PeerStats {
	ch := make(chan []PeerStats, 1)
	c.post(func() {
		var out []PeerStats
		for _, p := range c.peers {
			out = append(out, p.stats())
		}
		sortStats(out)
		ch <- out
	})
	select {
	case s := <-ch:
		return s
	case <-ctx.Done():
		return nil
	case <-c.done:
		return nil
	}
}

func (p *peer) stats() PeerStats {
	s := PeerStats{Device: p.dev, State: p.state.String(), PacketsIn: p.in.packets.Load(), BytesIn: p.in.bytes.Load(), FirstRTP: time.Duration(p.in.first.Load())}
	if ld := p.pc.LocalDescription(); ld != nil {
		s.Offered = ld.Type == webrtc.SDPTypeOffer
	}
	return s
}

// Serve runs the call until ctx ends: then it hangs up on every peer.
func (c *Call) Serve(ctx context.Context) error {
	defer close(c.done)
	sendCtx, stopSend := context.WithCancel(ctx)
	c.wg.Add(1)
	go c.send(sendCtx, c.track, c.src)
	if c.vtrack != nil {
		c.wg.Add(1)
		go c.send(sendCtx, c.vtrack, c.vsrc)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	defer func() {
		stopSend()
		bye, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		for k, p := range c.peers {
			if err := c.cfg.Signaller.Signal(bye, p.dev, OpHangup, "", ""); err != nil {
				c.log.Debug("hangup", "to", k, "err", err)
			}
			c.drop(k, "hung up")
		}
		c.wg.Wait()
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case fn := <-c.inbox:
			fn()
		case now := <-tick.C:
			for k, p := range c.peers {
				switch {
				case !p.failedAt.IsZero() && now.Sub(p.failedAt) >= c.cfg.FailedGrace:
					c.drop(k, "connection failed")
				case p.offered && !p.remote && now.Sub(p.start) >= reoffer:
					// Signals are not acknowledged: an offer (or its
					// answer) may be lost; offer again.
					c.drop(k, "no answer")
					c.offer(p.dev)
				}
			}
		}
	}
}

// send writes a source's samples to its shared track in real time, in a
// loop, until ctx ends.
func (c *Call) send(ctx context.Context, track *webrtc.TrackLocalStaticSample, src *source) {
	defer c.wg.Done()
	next := time.Now()
	for i := 0; ; i = (i + 1) % len(src.samples) {
		s := src.samples[i]
		if err := track.WriteSample(s); err != nil && !errors.Is(err, io.ErrClosedPipe) {
			c.log.Debug("write sample", "err", err)
		}
		next = next.Add(s.Duration)
		if d := time.Until(next); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		} else if ctx.Err() != nil {
			return
		} else if d < -time.Second {
			next = time.Now() // fell far behind (a loaded machine): do not burst
		}
	}
}

// newPeer makes a session with d; its callbacks post to the Serve
// goroutine and act only while it is still d's session.
func (c *Call) newPeer(d Device) (*peer, error) {
	pc, err := c.api.NewPeerConnection(webrtc.Configuration{ICEServers: c.cfg.ICEServers})
	if err != nil {
		return nil, fmt.Errorf("calls: peer connection: %w", err)
	}
	p := &peer{dev: d, pc: pc, start: time.Now(), in: &counters{}}
	k := d.String()
	mine := func() bool { q := c.peers[k]; return q != nil && q.pc == pc }
	for _, tr := range []*webrtc.TrackLocalStaticSample{c.track, c.vtrack} {
		if tr == nil {
			continue
		}
		sender, err := pc.AddTrack(tr)
		if err != nil {
			pc.Close()
			return nil, fmt.Errorf("calls: add track: %w", err)
		}
		c.wg.Add(1)
		go func() { // RTCP must be read for the interceptors to work
			defer c.wg.Done()
			buf := make([]byte, 1500)
			for {
				if _, _, err := sender.Read(buf); err != nil {
					return
				}
			}
		}()
	}
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		init := webrtc.ICECandidateInit{} // nil: gathering ended
		if cand != nil {
			init = cand.ToJSON()
		}
		b, _ := json.Marshal(init)
		c.post(func() {
			if mine() {
				c.signal(d, OpCandidate, "", string(b))
			}
		})
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		c.post(func() {
			if !mine() {
				return
			}
			p.state = s
			switch s {
			case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateDisconnected:
				if p.failedAt.IsZero() {
					p.failedAt = time.Now()
				}
			case webrtc.PeerConnectionStateConnected:
				p.failedAt = time.Time{}
			case webrtc.PeerConnectionStateClosed:
				// Closed by the stack, not by drop: DTLS refused the
				// session (a certificate that does not match the SDP's
				// fingerprint) or it broke for good.
				c.log.Info("call session refused", "device", k)
				c.refused.Add(1)
				c.drop(k, "closed")
				return
			}
			c.log.Debug("call peer", "device", k, "state", s.String())
		})
	})
	pc.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) { c.log.Debug("call ice", "device", k, "state", s.String()) })
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		c.wg.Add(1)
		go c.read(p, tr)
	})
	return p, nil
}

// read counts and records one remote track until its session closes.
func (c *Call) read(p *peer, tr *webrtc.TrackRemote) {
	defer c.wg.Done()
	var write func(*rtp.Packet) error
	var closeRec func() error
	if c.cfg.Record != "" {
		var err error
		write, closeRec, err = recorder(c.cfg.Record, p.dev, tr.Codec().MimeType)
		if err != nil {
			c.log.Warn("record", "device", p.dev.String(), "err", err)
		}
	}
	if closeRec != nil {
		defer closeRec()
	}
	for {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		if p.in.packets.Add(1) == 1 {
			p.in.first.Store(int64(max(1, time.Since(p.start))))
		}
		p.in.bytes.Add(int64(len(pkt.Payload)))
		if write != nil {
			if err := write(pkt); err != nil {
				c.log.Warn("record", "device", p.dev.String(), "err", err)
				write = nil
			}
		}
	}
}

// recorder opens a file for what dev sends with this codec.
func recorder(dir string, dev Device, mime string) (func(*rtp.Packet) error, func() error, error) {
	switch strings.ToLower(mime) {
	case strings.ToLower(webrtc.MimeTypeOpus):
		w, err := oggwriter.New(recordName(dir, dev, ".ogg"), 48000, 2)
		if err != nil {
			return nil, nil, err
		}
		return w.WriteRTP, w.Close, nil
	case strings.ToLower(webrtc.MimeTypePCMU):
		w, err := newWAVWriter(recordName(dir, dev, ".wav"))
		if err != nil {
			return nil, nil, err
		}
		return func(p *rtp.Packet) error { return w.writeULaw(p.Payload) }, w.Close, nil
	case strings.ToLower(webrtc.MimeTypeVP8), strings.ToLower(webrtc.MimeTypeVP9), strings.ToLower(webrtc.MimeTypeAV1):
		w, err := ivfwriter.New(recordName(dir, dev, ".ivf"), ivfwriter.WithCodec(mime))
		if err != nil {
			return nil, nil, err
		}
		return w.WriteRTP, w.Close, nil
	}
	return nil, nil, fmt.Errorf("calls: no recorder for %s", mime)
}

func (c *Call) signal(to Device, op, sdp, cand string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.cfg.Signaller.Signal(ctx, to, op, sdp, cand); err != nil {
		c.log.Debug("call signal", "to", to.String(), "op", op, "err", err)
	}
}

func (c *Call) full() bool { return len(c.peers)+1 >= MaxPeers }

// offer opens a session to d.
func (c *Call) offer(d Device) {
	if c.full() {
		c.log.Warn("call is full; not connecting", "device", d.String(), "max", MaxPeers)
		return
	}
	p, err := c.newPeer(d)
	if err != nil {
		c.log.Warn("call offer", "err", err)
		return
	}
	c.peers[d.String()] = p
	p.offered = true
	o, err := p.pc.CreateOffer(nil)
	if err == nil {
		err = p.pc.SetLocalDescription(o)
	}
	if err != nil {
		c.log.Warn("call offer", "device", d.String(), "err", err)
		c.drop(d.String(), "offer failed")
		return
	}
	c.signal(d, OpOffer, o.SDP, "")
}

func (c *Call) receive(s Signal) {
	k := s.From.String()
	if s.From == c.cfg.Self {
		return
	}
	p := c.peers[k]
	switch s.Op {
	case OpOffer:
		if p != nil && p.pc.SignalingState() == webrtc.SignalingStateHaveLocalOffer && c.cfg.Self.String() < k {
			return // glare: this device's offer wins; the other side answers it
		}
		if p != nil {
			c.drop(k, "renegotiated") // glare lost, or the other side restarted
		}
		if c.full() {
			c.signal(s.From, OpHangup, "", "")
			return
		}
		np, err := c.newPeer(s.From)
		if err != nil {
			c.log.Warn("call answer", "err", err)
			return
		}
		c.peers[k] = np
		if err := c.remote(np, webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: s.SDP}); err != nil {
			c.log.Info("call offer refused", "device", k, "err", err)
			c.drop(k, "bad offer")
			return
		}
		a, err := np.pc.CreateAnswer(nil)
		if err == nil {
			err = np.pc.SetLocalDescription(a)
		}
		if err != nil {
			c.log.Info("call answer", "device", k, "err", err)
			c.drop(k, "answer failed")
			return
		}
		c.signal(s.From, OpAnswer, a.SDP, "")
	case OpAnswer:
		if p == nil || p.pc.SignalingState() != webrtc.SignalingStateHaveLocalOffer {
			return
		}
		if err := c.remote(p, webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: s.SDP}); err != nil {
			c.log.Info("call answer refused", "device", k, "err", err)
			c.drop(k, "bad answer")
		}
	case OpCandidate:
		var init webrtc.ICECandidateInit
		if json.Unmarshal([]byte(s.Candidate), &init) != nil || init.Candidate == "" {
			return
		}
		switch {
		case p == nil:
			if len(c.early[k]) < maxEarly && len(c.early) < 4*MaxPeers {
				c.early[k] = append(c.early[k], init)
			}
		case !p.remote:
			if len(p.pending) < maxEarly {
				p.pending = append(p.pending, init)
			}
		default:
			c.addCandidate(p, init)
		}
	case OpHangup:
		c.drop(k, "hung up")
	}
}

// remote sets a session's remote description and adds the candidates that
// came before it.
func (c *Call) remote(p *peer, sd webrtc.SessionDescription) error {
	if err := p.pc.SetRemoteDescription(sd); err != nil {
		return err
	}
	p.remote = true
	k := p.dev.String()
	for _, init := range append(c.early[k], p.pending...) {
		c.addCandidate(p, init)
	}
	delete(c.early, k)
	p.pending = nil
	return nil
}

// addCandidate adds a remote candidate of the session's current ICE
// credentials (one of a dropped session is ignored).
func (c *Call) addCandidate(p *peer, init webrtc.ICECandidateInit) {
	if init.UsernameFragment != nil && *init.UsernameFragment != "" {
		if rd := p.pc.RemoteDescription(); rd != nil && !strings.Contains(rd.SDP, "a=ice-ufrag:"+*init.UsernameFragment+"\r") && !strings.Contains(rd.SDP, "a=ice-ufrag:"+*init.UsernameFragment+"\n") {
			return
		}
	}
	if err := p.pc.AddICECandidate(init); err != nil {
		c.log.Debug("call candidate", "device", p.dev.String(), "err", err)
	}
}

func (c *Call) drop(k, why string) {
	p := c.peers[k]
	if p == nil {
		return
	}
	delete(c.peers, k)
	delete(c.early, k)
	c.log.Debug("call peer dropped", "device", k, "why", why)
	if err := p.pc.Close(); err != nil {
		c.log.Debug("close peer connection", "device", k, "err", err)
	}
}
