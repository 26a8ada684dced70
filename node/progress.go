package node

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/parley-p2p/parley/api"
)

// progressTable holds how far the running operations that asked for it
// have come (api.EpProgress), by the client's token. An entry lives while
// its operation runs, and a little after, so that a client's last look
// finds the final count.
type progressTable struct {
	mu sync.Mutex
	m  map[string]*progress
}

// progress counts one operation's units; nil counts nothing.
type progress struct {
	done, total atomic.Int64
}

func (p *progress) add(n int) { p.addTotal(0, n) }

// Set reports done of total (mediasvc.Progress); total 0 keeps the total.
func (p *progress) Set(done, total int64) {
	if p == nil {
		return
	}
	if total > 0 {
		p.total.Store(total)
	}
	p.done.Store(done)
}
func (p *progress) setTotal(n int) { p.addTotal(n, 0) }

func (p *progress) addTotal(total, done int) {
	if p == nil {
		return
	}
	if total > 0 {
		p.total.Store(int64(total))
	}
	p.done.Add(int64(done))
}

// maxProgress bounds the table (a client that never looks again).
const maxProgress = 64

// start registers id ("" or a bad token: a nil progress, which counts
// nothing) and returns it with the function that retires it.
func (t *progressTable) start(id string) (*progress, func()) {
	if len(id) < 8 || len(id) > 64 {
		return nil, func() {}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]*progress{}
	}
	if _, dup := t.m[id]; dup || len(t.m) >= maxProgress {
		return nil, func() {}
	}
	p := &progress{}
	t.m[id] = p
	return p, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		delete(t.m, id)
	}
}

// get answers EpProgress.
func (t *progressTable) get(_ context.Context, req api.ProgressReq) (api.ProgressResp, error) {
	t.mu.Lock()
	p := t.m[req.ID]
	t.mu.Unlock()
	if p == nil {
		return api.ProgressResp{}, errorf(api.KindNotFound, "no operation %q runs", req.ID)
	}
	return api.ProgressResp{Done: p.done.Load(), Total: p.total.Load()}, nil
}
