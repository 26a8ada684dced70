package calls

import (
	"context"
	"testing"
)

// FuzzReceive: any signal (op, SDP, candidate) from a device is taken in
// without a crash, and the peer goes on answering.
func FuzzReceive(f *testing.F) {
	b := newBoard()
	src := b.add(f, "src", Config{})
	offer := make(chan string, 1)
	b.tamper = func(from, to Device, op, sdp string) string {
		if op == OpOffer {
			select {
			case offer <- sdp:
			default:
			}
		}
		return ""
	}
	src.call.Join([]Device{{User: "user-x", Device: "dev-x"}})
	sdp := <-offer
	b.tamper = nil
	f.Add(OpOffer, sdp, "")
	f.Add(OpOffer, "v=0\r\n", "")
	f.Add(OpAnswer, sdp, "")
	f.Add(OpCandidate, "", `{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 9 typ host","sdpMid":"0","sdpMLineIndex":0}`)
	f.Add(OpCandidate, "", `{"candidate":""}`)
	f.Add(OpCandidate, "", `{`)
	f.Add(OpHangup, "", "")
	f.Add("dance", "x", "y")
	m := b.add(f, "m", Config{})
	from := Device{User: "user-f", Device: "dev-f"}
	f.Fuzz(func(t *testing.T, op, sdp, cand string) {
		m.call.Receive(Signal{From: from, Op: op, SDP: sdp, Candidate: cand})
		if m.call.Stats(context.Background()) == nil && op != OpHangup {
			// Stats answers (nil only once Serve ended)
			select {
			case <-m.call.done:
				t.Fatal("the peer stopped")
			default:
			}
		}
		m.call.Receive(Signal{From: from, Op: OpHangup})
	})
}
