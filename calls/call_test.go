package calls

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// within is how long a call may take to connect on a loaded machine.
const within = 60 * time.Second

// board is an in-memory signalling switchboard between the calls of a test.
type board struct {
	mu     sync.Mutex
	calls  map[Device]*Call
	tamper func(from, to Device, op, sdp string) string
}

type boardEnd struct {
	b    *board
	self Device
}

func (e boardEnd) Signal(_ context.Context, to Device, op, sdp, cand string) error {
	e.b.mu.Lock()
	c, t := e.b.calls[to], e.b.tamper
	e.b.mu.Unlock()
	if t != nil {
		if sdp = t(e.self, to, op, sdp); sdp == "" && (op == OpOffer || op == OpAnswer) {
			return nil // lost on the way
		}
	}
	if c == nil {
		return fmt.Errorf("no device %s", to)
	}
	c.Receive(Signal{From: e.self, Op: op, SDP: sdp, Candidate: cand})
	return nil
}

type member struct {
	dev    Device
	call   *Call
	cancel context.CancelFunc
	done   chan error
	dir    string
}

func newBoard() *board { return &board{calls: map[Device]*Call{}} }

// add starts a call peer for device name; cfg may set Send and Record.
func (b *board) add(t testing.TB, name string, cfg Config) *member {
	t.Helper()
	d := Device{User: "user-" + name, Device: "dev-" + name}
	cfg.Self, cfg.Signaller, cfg.Loopback = d, boardEnd{b, d}, true
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{dev: d, call: c, cancel: cancel, done: make(chan error, 1), dir: cfg.Record}
	b.mu.Lock()
	b.calls[d] = c
	b.mu.Unlock()
	go func() { m.done <- c.Serve(ctx) }()
	t.Cleanup(m.stop)
	return m
}

// joinInTurn starts a peer per name, each joining those before it.
func (b *board) joinInTurn(t *testing.T, cfg Config, names ...string) []*member {
	var ms []*member
	for _, name := range names {
		m := b.add(t, name, cfg)
		var in []Device
		for _, o := range ms {
			in = append(in, o.dev)
		}
		m.call.Join(in)
		ms = append(ms, m)
	}
	return ms
}

func (m *member) stop() {
	if m.cancel != nil {
		m.cancel()
		<-m.done
		m.cancel = nil
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v: %s", what, within, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// flowing reports whether m receives RTP from each of want (and only
// them).
func flowing(m *member, want ...*member) (bool, string) {
	st := m.call.Stats(context.Background())
	got := map[Device]PeerStats{}
	for _, s := range st {
		got[s.Device] = s
	}
	if len(got) != len(want) {
		return false, fmt.Sprintf("%s has %d sessions, want %d: %+v", m.dev.Device, len(got), len(want), st)
	}
	for _, w := range want {
		if got[w.dev].PacketsIn < 5 {
			return false, fmt.Sprintf("%s got %d packets from %s", m.dev.Device, got[w.dev].PacketsIn, w.dev.Device)
		}
	}
	return true, ""
}

// meshFlows waits until every member receives RTP from every other.
func meshFlows(t *testing.T, ms ...*member) {
	t.Helper()
	waitFor(t, "RTP both ways on every pair", func() (bool, string) {
		for _, m := range ms {
			var others []*member
			for _, o := range ms {
				if o != m {
					others = append(others, o)
				}
			}
			if ok, why := flowing(m, others...); !ok {
				return false, why
			}
		}
		return true, ""
	})
}

// sineWAV writes a 16-bit stereo WAV of a 440 Hz tone at 16 kHz.
func sineWAV(t testing.TB, path string, secs float64) {
	t.Helper()
	const rate = 16000
	n := int(secs * rate)
	data := make([]byte, 4*n)
	for i := range n {
		v := int16(12000 * math.Sin(2*math.Pi*440*float64(i)/rate))
		binary.LittleEndian.PutUint16(data[4*i:], uint16(v))
		binary.LittleEndian.PutUint16(data[4*i+2:], uint16(v))
	}
	h := make([]byte, 44)
	copy(h, "RIFF")
	binary.LittleEndian.PutUint32(h[4:], uint32(36+len(data)))
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], 1)
	binary.LittleEndian.PutUint16(h[22:], 2)
	binary.LittleEndian.PutUint32(h[24:], rate)
	binary.LittleEndian.PutUint32(h[28:], rate*4)
	binary.LittleEndian.PutUint16(h[32:], 4)
	binary.LittleEndian.PutUint16(h[34:], 16)
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], uint32(len(data)))
	if err := os.WriteFile(path, append(h, data...), 0o600); err != nil {
		t.Fatal(err)
	}
}

// rms is the root mean square of a recorded WAV's samples.
func rms(t *testing.T, path string) (float64, int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pcm, rate, ch, err := readWAV(b)
	if err != nil || rate != 8000 || ch != 1 {
		t.Fatalf("recording %s: rate %d channels %d: %v", path, rate, ch, err)
	}
	var sum float64
	for _, s := range pcm {
		sum += float64(s) * float64(s)
	}
	if len(pcm) == 0 {
		return 0, 0
	}
	return math.Sqrt(sum / float64(len(pcm))), len(pcm)
}

// Two peers: RTP flows both ways; each records the other's tone (not
// silence) as WAV.
func TestTwoPeers(t *testing.T) {
	b := newBoard()
	tone := filepath.Join(t.TempDir(), "tone.wav")
	sineWAV(t, tone, 1)
	a := b.add(t, "a", Config{Send: tone, Record: t.TempDir()})
	c := b.add(t, "b", Config{Send: tone, Record: t.TempDir()})
	c.call.Join([]Device{a.dev}) // b joins a call a is in
	meshFlows(t, a, c)
	waitFor(t, "half a second of audio each way", func() (bool, string) {
		for _, m := range []*member{a, c} {
			if st := m.call.Stats(context.Background()); len(st) != 1 || st[0].PacketsIn < 25 {
				return false, fmt.Sprintf("%+v", st)
			}
		}
		return true, ""
	})
	for _, m := range []*member{a, c} {
		t.Logf("%s: %+v", m.dev.Device, m.call.Stats(context.Background()))
	}
	for _, m := range []*member{a, c} {
		m.stop()
		files, _ := filepath.Glob(filepath.Join(m.dir, "*.wav"))
		if len(files) != 1 {
			t.Fatalf("%s recorded %v", m.dev.Device, files)
		}
		level, n := rms(t, files[0])
		t.Logf("%s: %d samples, rms %.0f", files[0], n, level)
		if n < 4000 || level < 1000 {
			t.Fatalf("%s recorded %d samples at rms %.0f: silence", m.dev.Device, n, level)
		}
	}
}

// Four peers join one after another (each offers to those already in):
// RTP flows both ways on all six pairs; one hangs up and the others drop
// it and go on.
func TestFourPeersAndLeave(t *testing.T) {
	ms := newBoard().joinInTurn(t, Config{}, "a", "b", "c", "d")
	meshFlows(t, ms...)
	ms[2].stop() // c hangs up
	rest := []*member{ms[0], ms[1], ms[3]}
	before := map[Device]int64{}
	for _, m := range rest {
		for _, s := range m.call.Stats(context.Background()) {
			before[m.dev] += s.PacketsIn
		}
	}
	meshFlows(t, rest...)
	waitFor(t, "the others go on", func() (bool, string) {
		for _, m := range rest {
			var n int64
			for _, s := range m.call.Stats(context.Background()) {
				n += s.PacketsIn
			}
			if n < before[m.dev]+50 {
				return false, fmt.Sprintf("%s: %d packets, had %d", m.dev.Device, n, before[m.dev])
			}
		}
		return true, ""
	})
}

// Signals are not acknowledged: a lost offer is sent again.
func TestLostOfferRetried(t *testing.T) {
	b := newBoard()
	var mu sync.Mutex
	lost := 0
	b.tamper = func(from, to Device, op, sdp string) string {
		mu.Lock()
		defer mu.Unlock()
		if op == OpOffer && lost == 0 {
			lost++
			return ""
		}
		return sdp
	}
	a := b.add(t, "a", Config{})
	c := b.add(t, "b", Config{})
	c.call.Join([]Device{a.dev})
	meshFlows(t, a, c)
	mu.Lock()
	defer mu.Unlock()
	if lost != 1 {
		t.Fatalf("%d offers lost", lost)
	}
}

// A peer dropped by a leave event (Drop), not a hangup, is dropped too.
func TestDropOnLeave(t *testing.T) {
	b := newBoard()
	a := b.add(t, "a", Config{})
	c := b.add(t, "b", Config{})
	c.call.Join([]Device{a.dev})
	meshFlows(t, a, c)
	a.call.Drop(c.dev)
	waitFor(t, "a drops b", func() (bool, string) {
		st := a.call.Stats(context.Background())
		return len(st) == 0, fmt.Sprint(st)
	})
}

// Glare: both offer at once; the offer of the lower USER/DEVICE wins, the
// other answers it, and one session per pair carries RTP both ways.
func TestGlare(t *testing.T) {
	b := newBoard()
	var offers sync.Map
	b.tamper = func(from, to Device, op, sdp string) string {
		if op == OpOffer {
			n, _ := offers.LoadOrStore(from, new(int))
			*n.(*int)++
		}
		return sdp
	}
	a := b.add(t, "a", Config{})
	c := b.add(t, "b", Config{})
	a.call.Join([]Device{c.dev})
	c.call.Join([]Device{a.dev})
	meshFlows(t, a, c)
	na, _ := offers.Load(a.dev)
	nb, _ := offers.Load(c.dev)
	if na == nil || nb == nil {
		t.Skip("the offers did not cross (no glare this run)")
	}
	// Both offered; the session up is the one the winner (a, whose
	// USER/DEVICE sorts lower) offered.
	for _, m := range []*member{a, c} {
		if st := m.call.Stats(context.Background()); len(st) != 1 || st[0].State != "connected" || st[0].Offered != (m == a) {
			t.Fatalf("%s: %+v", m.dev.Device, st)
		}
	}
}

var fingerprintLine = regexp.MustCompile(`a=fingerprint:sha-256 [0-9A-F:]+`)

// A session whose SDP carries a fingerprint other than the DTLS
// certificate's (what a relay in the middle would have to send) is
// refused: no RTP flows and the session is dropped.
func TestForgedFingerprintRefused(t *testing.T) {
	b := newBoard()
	forged := "a=fingerprint:sha-256 " + strings.TrimSuffix(strings.Repeat("AB:", 32), ":")
	var forgedN int
	var mu sync.Mutex
	b.tamper = func(from, to Device, op, sdp string) string {
		if op == OpOffer || op == OpAnswer {
			mu.Lock()
			if fingerprintLine.MatchString(sdp) {
				forgedN++
			}
			mu.Unlock()
			return fingerprintLine.ReplaceAllString(sdp, forged)
		}
		return sdp
	}
	a := b.add(t, "a", Config{FailedGrace: time.Second})
	c := b.add(t, "b", Config{FailedGrace: time.Second})
	c.call.Join([]Device{a.dev})
	waitFor(t, "the forged session dropped", func() (bool, string) {
		var why []string
		for _, m := range []*member{a, c} {
			for _, s := range m.call.Stats(context.Background()) {
				if s.PacketsIn > 0 {
					t.Fatalf("%s received RTP over a session with a forged fingerprint", m.dev.Device)
				}
				why = append(why, m.dev.Device+": "+s.State)
			}
		}
		return len(why) == 0 && a.call.Refused()+c.call.Refused() > 0, strings.Join(why, ", ")
	})
	mu.Lock()
	defer mu.Unlock()
	if forgedN < 2 {
		t.Fatalf("forged %d descriptions", forgedN)
	}
}

// Setup time (first signal to first remote RTP packet) on loopback over
// repeated two-peer calls, and the per-participant cost of a 4-peer mesh;
// figures are logged (go test ./calls -run TestSetupFigures -v).
func TestSetupFigures(t *testing.T) {
	if testing.Short() {
		t.Skip("figures: not under -short")
	}
	var setups []time.Duration
	for range 20 {
		b := newBoard()
		a := b.add(t, "a", Config{})
		c := b.add(t, "b", Config{})
		start := time.Now()
		c.call.Join([]Device{a.dev})
		waitFor(t, "first packet", func() (bool, string) {
			st := c.call.Stats(context.Background())
			return len(st) == 1 && st[0].PacketsIn > 0, fmt.Sprint(st)
		})
		setups = append(setups, time.Since(start))
		a.stop()
		c.stop()
	}
	sort.Slice(setups, func(i, j int) bool { return setups[i] < setups[j] })
	t.Logf("call setup (join to first remote RTP packet), %d calls: p50 %v, p90 %v, max %v", len(setups), setups[len(setups)/2], setups[len(setups)*9/10], setups[len(setups)-1])
}

// The cost of a 4-peer mesh per participant: CPU (this process's user and
// system time over the window, divided by 4) and RTP payload received per
// second (each participant sends the same to each of the 3 others).
// Figures are logged (go test ./calls -run TestMeshFigures -v).
func TestMeshFigures(t *testing.T) {
	if testing.Short() {
		t.Skip("figures: not under -short")
	}
	tone := filepath.Join(t.TempDir(), "tone.wav")
	sineWAV(t, tone, 2)
	for _, video := range []bool{false, true} {
		t.Run(fmt.Sprintf("video=%v", video), func(t *testing.T) { meshFigures(t, Config{Send: tone, Video: video}) })
	}
}

func meshFigures(t *testing.T, cfg Config) {
	ms := newBoard().joinInTurn(t, cfg, "a", "b", "c", "d")
	defer func() {
		for _, m := range ms {
			m.stop()
		}
	}()
	meshFlows(t, ms...)
	bytesIn := func() (n int64, pkts int64) {
		for _, m := range ms {
			for _, s := range m.call.Stats(context.Background()) {
				n += s.BytesIn
				pkts += s.PacketsIn
			}
		}
		return n, pkts
	}
	const window = 5 * time.Second
	cpu0, t0 := cpuTime(t), time.Now()
	b0, p0 := bytesIn()
	time.Sleep(window) // a measurement window, not a wait for convergence
	cpu1, el := cpuTime(t), time.Since(t0)
	b1, p1 := bytesIn()
	perPeerCPU := float64(cpu1-cpu0) / float64(el) / 4 * 100
	payload := float64(b1-b0) / el.Seconds() / 4 * 8 / 1000 // kbit/s received per participant
	pps := float64(p1-p0) / el.Seconds() / 4
	// On the wire each packet adds RTP (12), SRTP tag (10), UDP (8) and IPv4 (20) bytes.
	wire := payload + pps*50*8/1000
	what := "G.711 (PCMU) audio"
	if cfg.Video {
		what += " and the VP8 test pattern (320x240, 15 fps)"
	}
	t.Logf("4-peer mesh, %s, per participant: CPU %.1f%% of one core; received %.0f packets/s, %.0f kbit/s payload, about %.0f kbit/s on the wire (the same sent); load average %s", what, perPeerCPU, pps, payload, wire, loadavg())
}

// loadavg is the machine's load averages, for the figures' context.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
