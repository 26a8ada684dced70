package mediasvc

import (
	"context"
	"testing"

	"github.com/parley-p2p/parley/node/internal/peertest"
)

// TestMediaRequestBound (issue 17, item 1): a media request over
// mediaMaxRequest resets the stream unanswered.
func TestMediaRequestBound(t *testing.T) {
	mn := newMediaNet(t, 2)
	mn.link(0, 1)
	st, err := mn.hosts[1].NewStream(context.Background(), mn.hosts[0].ID(), Protocol)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Reset()
	st.Write(peertest.FrameOf(t, &mediaMsg{Op: mediaOpGet, CID: make([]byte, mediaMaxRequest)}))
	if got, reset := peertest.Answer(t, st); !reset || len(got) > 0 {
		t.Errorf("a request over %d octets: answer %q, reset %v; want a reset", mediaMaxRequest, got, reset)
	}
}
