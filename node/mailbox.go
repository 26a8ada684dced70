package node

import "sync"

// mailbox is an unbounded queue between a producer that must not block (the
// engine goroutine) and one consumer goroutine.
type mailbox[T any] struct {
	mu     sync.Mutex
	items  []T // guarded by mu
	signal chan struct{}
}

func newMailbox[T any]() *mailbox[T] { return &mailbox[T]{signal: make(chan struct{}, 1)} }

func (m *mailbox[T]) put(v T) {
	m.mu.Lock()
	m.items = append(m.items, v)
	m.mu.Unlock()
	select {
	case m.signal <- struct{}{}:
	default:
	}
}

// take returns everything queued so far.
func (m *mailbox[T]) take() []T {
	m.mu.Lock()
	defer m.mu.Unlock()
	items := m.items
	m.items = nil
	return items
}
