package e2e

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-p2p/parley/api"
)

// callTimeout bounds call setup and a few seconds of audio on a loaded
// machine.
const callTimeout = 90 * govTimeout / 30

// The acceptance of the command-line calls (issue 12): two daemons, each
// with 'parley call ROOM --send tone.wav --record DIR'; each records the
// other's tone (not silence); hanging up ends the call, and both
// histories show start, join, leave, leave and end.
func TestCallCLI(t *testing.T) {
	t.Parallel()
	a, b, room := callPair(t)
	dir := t.TempDir()
	tone := filepath.Join(dir, "tone.wav")
	writeTone(t, tone)
	recA, recB := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, d := range []string{recA, recB} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// Bad input: a clear error, nothing started.
	refused(t, a.run("", "call", room, "--send", filepath.Join(dir, "missing.wav")), "a call with a missing file")
	refused(t, a.run("", "call", room, "--send", filepath.Join(dir, "a")), "a call sending a directory")
	var calls api.CallsResp
	a.must(&calls, "calls", room)
	if len(calls.Calls) != 0 {
		t.Fatalf("a refused dial started a call: %+v", calls)
	}

	var ca, cb api.CallResp
	a.must(&ca, "call", room, "--send", tone, "--record", recA)
	eventually(t, govTimeout, "B sees the call", func() error {
		if err := b.try(&calls, "calls", room); err != nil {
			return err
		}
		if len(calls.Calls) != 1 || calls.Calls[0].Call != ca.Call {
			return fmt.Errorf("B's calls: %+v", calls)
		}
		return nil
	})
	b.must(&cb, "call", room, "--send", tone, "--record", recB)
	if cb.Call != ca.Call {
		t.Fatalf("B joined call %s, A is in %s", cb.Call, ca.Call)
	}
	refused(t, b.run("", "call", room), "a second call peer on one device")
	// Two seconds of the other's audio recorded on each side.
	for _, d := range []string{recA, recB} {
		recordings(t, d, 1, 2)
	}
	b.must(&calls, "calls", room)
	if len(calls.Calls) != 1 || len(calls.Calls[0].Participants) != 2 {
		t.Fatalf("B's calls: %+v", calls)
	}
	a.must(nil, "call", "hangup", room)
	b.must(nil, "call", "hangup", room)
	refused(t, b.run("", "call", "hangup", room), "hanging up twice")
	for _, d := range []string{recA, recB} {
		fs, _ := filepath.Glob(filepath.Join(d, "*.wav"))
		level, n := wavLevel(t, fs[0])
		t.Logf("%s: %d samples, rms %.0f", fs[0], n, level)
		if n < 2*8000 || level < 1000 {
			t.Fatalf("%s: %d samples at rms %.0f: silence", fs[0], n, level)
		}
	}
	for _, d := range []*daemon{a, b} {
		eventually(t, govTimeout, d.name+" shows the whole call", func() error {
			evs, err := d.history(room)
			if err != nil {
				return err
			}
			var acts []string
			for _, e := range evs {
				if e.Type == "call" && e.Call != nil && e.Call.Call == ca.Call {
					acts = append(acts, e.Call.Action)
				}
			}
			if got := strings.Join(acts, " "); got != "start join leave leave end" {
				return fmt.Errorf("call events %q", got)
			}
			return nil
		})
	}
	a.must(&calls, "calls", room)
	if len(calls.Calls) != 0 {
		t.Fatalf("an ended call is listed: %+v", calls)
	}
}

// callPair is two connected daemons and an encrypted room both are in,
// whose keys both hold.
func callPair(t *testing.T) (a, b *daemon, room string) {
	ds, room := callGroup(t, 2)
	return ds[0], ds[1], room
}

// callGroup is n daemons, all connected to each other, and an encrypted
// room all are in, whose keys all hold.
func callGroup(t *testing.T, n int) ([]*daemon, string) {
	t.Helper()
	var ds []*daemon
	for i := range n {
		d := startDaemon(t, string(rune('A'+i)))
		for _, o := range ds {
			d.must(nil, "connect", o.addr)
		}
		ds = append(ds, d)
	}
	var rr api.RoomResp
	ds[0].must(&rr, "room", "create", "--name", "call room") // encrypted
	for _, d := range ds[1:] {
		inviteAndJoin(t, ds[0], d, rr.Room)
	}
	for _, d := range ds {
		eventually(t, govTimeout, d.name+" sees every member device", func() error {
			var info api.RoomInfoResp
			if err := d.try(&info, "room", "info", rr.Room); err != nil {
				return err
			}
			if len(info.Devices) < n {
				return fmt.Errorf("%d devices", len(info.Devices))
			}
			return nil
		})
	}
	return ds, rr.Room
}

// recordings waits until dir holds want WAV files of at least secs
// seconds each, and returns them.
func recordings(t *testing.T, dir string, want int, secs float64) []string {
	t.Helper()
	var fs []string
	eventually(t, callTimeout, fmt.Sprintf("%d recordings in %s", want, dir), func() error {
		fs, _ = filepath.Glob(filepath.Join(dir, "*.wav"))
		if len(fs) != want {
			return fmt.Errorf("files %v", fs)
		}
		for _, f := range fs {
			st, err := os.Stat(f)
			if err != nil {
				return err
			}
			if st.Size() < 44+int64(secs*8000*2) {
				return fmt.Errorf("%s: %d bytes", f, st.Size())
			}
		}
		return nil
	})
	return fs
}

// A group call of four daemons: each hears the three others; one hangs
// up and the other three go on hearing each other.
func TestCallCLIFour(t *testing.T) {
	if testing.Short() {
		t.Skip("four daemons: not under -short")
	}
	t.Parallel()
	ds, room := callGroup(t, 4)
	tone := filepath.Join(t.TempDir(), "tone.wav")
	writeTone(t, tone)
	var dirs []string
	for _, d := range ds {
		dir := filepath.Join(t.TempDir(), d.name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, dir)
		var c api.CallResp
		d.must(&c, "call", room, "--send", tone, "--record", dir)
		eventually(t, govTimeout, "everyone sees "+d.name+" in the call", func() error {
			for _, o := range ds {
				var calls api.CallsResp
				if err := o.try(&calls, "calls", room); err != nil {
					return err
				}
				if len(calls.Calls) != 1 || !slices.ContainsFunc(calls.Calls[0].Participants, func(p api.CallParticipant) bool { return p.User == d.user }) {
					return fmt.Errorf("%s's calls: %+v", o.name, calls)
				}
			}
			return nil
		})
	}
	for _, dir := range dirs {
		recordings(t, dir, 3, 1)
	}
	ds[3].must(nil, "call", "hangup", room)
	// The three others go on: each recording of the two still in grows.
	sizes := map[string]int64{}
	for _, dir := range dirs[:3] {
		for _, f := range recordings(t, dir, 3, 1) {
			st, _ := os.Stat(f)
			sizes[f] = st.Size()
		}
	}
	eventually(t, callTimeout, "the three others go on", func() error {
		for _, dir := range dirs[:3] {
			grew := 0
			fs, _ := filepath.Glob(filepath.Join(dir, "*.wav"))
			for _, f := range fs {
				if st, err := os.Stat(f); err == nil && st.Size() > sizes[f]+8000*2 {
					grew++
				}
			}
			if grew != 2 {
				return fmt.Errorf("%s: %d recordings grew by a second", dir, grew)
			}
		}
		return nil
	})
	for _, d := range ds[:3] {
		d.must(nil, "call", "hangup", room)
	}
	for _, dir := range dirs {
		for _, f := range recordings(t, dir, 3, 1) {
			if level, n := wavLevel(t, f); level < 1000 {
				t.Fatalf("%s: %d samples at rms %.0f: silence", f, n, level)
			}
		}
	}
}

// Call setup through two daemons, as a user sees it: from 'parley call'
// on the joiner to the first packet of the other's audio in its recording
// (signals sealed and sent over gossip, ICE, DTLS, SRTP). p50 and p90 of
// 10 calls are logged (go test ./e2e -run TestCallSetupTime -v).
func TestCallSetupTime(t *testing.T) {
	if testing.Short() {
		t.Skip("figures: not under -short")
	}
	t.Parallel()
	a, b, room := callPair(t)
	var setups []time.Duration
	for i := range 10 {
		dir := filepath.Join(t.TempDir(), fmt.Sprint(i))
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		a.must(nil, "call", room)
		eventually(t, govTimeout, "B sees the call", func() error {
			var calls api.CallsResp
			if err := b.try(&calls, "calls", room); err != nil {
				return err
			}
			if len(calls.Calls) != 1 {
				return fmt.Errorf("B's calls: %+v", calls)
			}
			return nil
		})
		start := time.Now()
		b.must(nil, "call", room, "--record", dir)
		for {
			fs, _ := filepath.Glob(filepath.Join(dir, "*.wav"))
			if len(fs) == 1 {
				if st, err := os.Stat(fs[0]); err == nil && st.Size() > 44 {
					break
				}
			}
			if time.Since(start) > callTimeout {
				t.Fatalf("call %d: no audio after %v", i, callTimeout)
			}
			time.Sleep(5 * time.Millisecond) // the measurement's resolution
		}
		setups = append(setups, time.Since(start))
		b.must(nil, "call", "hangup", room)
		a.must(nil, "call", "hangup", room)
	}
	slices.Sort(setups)
	t.Logf("call setup through two daemons ('parley call' to the first remote audio packet recorded), %d calls: p50 %v, p90 %v, max %v",
		len(setups), setups[len(setups)/2].Round(time.Millisecond), setups[len(setups)*9/10].Round(time.Millisecond), setups[len(setups)-1].Round(time.Millisecond))
}

// writeTone writes three seconds of a 440 Hz tone, 16-bit mono at 44.1 kHz.
func writeTone(t *testing.T, path string) {
	t.Helper()
	const rate = 44100
	data := make([]byte, 2*3*rate)
	for i := range len(data) / 2 {
		binary.LittleEndian.PutUint16(data[2*i:], uint16(int16(10000*math.Sin(2*math.Pi*440*float64(i)/rate))))
	}
	h := []byte("RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x10\x00data\x00\x00\x00\x00")
	binary.LittleEndian.PutUint32(h[4:], uint32(36+len(data)))
	binary.LittleEndian.PutUint32(h[24:], rate)
	binary.LittleEndian.PutUint32(h[28:], 2*rate)
	binary.LittleEndian.PutUint32(h[40:], uint32(len(data)))
	if err := os.WriteFile(path, append(h, data...), 0o600); err != nil {
		t.Fatal(err)
	}
}

// wavLevel is the RMS level and sample count of a recording (the 44-byte
// header the daemon writes, then 16-bit samples).
func wavLevel(t *testing.T, path string) (float64, int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 44 || string(b[:4]) != "RIFF" || int(binary.LittleEndian.Uint32(b[40:])) != len(b)-44 {
		t.Fatalf("%s is not a complete WAV file (%d bytes)", path, len(b))
	}
	n := (len(b) - 44) / 2
	var sum float64
	for i := range n {
		s := float64(int16(binary.LittleEndian.Uint16(b[44+2*i:])))
		sum += s * s
	}
	if n == 0 {
		return 0, 0
	}
	return math.Sqrt(sum / float64(n)), n
}
