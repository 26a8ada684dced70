// Package mailbox is an unbounded queue between a producer that must not
// block (the engine goroutine, a libp2p notifier) and one consumer
// goroutine. It must not block the producer, bound the queue or order
// anything beyond first in, first out.
package mailbox

import "sync"

// Mailbox is an unbounded queue between a producer that must not block (the
// engine goroutine) and one consumer goroutine.
type Mailbox[T any] struct {
	mu     sync.Mutex
	items  []T // guarded by mu
	Signal chan struct{}
}

// New returns an empty mailbox.
func New[T any]() *Mailbox[T] { return &Mailbox[T]{Signal: make(chan struct{}, 1)} }

// Put queues v and signals the consumer. It never blocks.
func (m *Mailbox[T]) Put(v T) {
	m.mu.Lock()
	m.items = append(m.items, v)
	m.mu.Unlock()
	select {
	case m.Signal <- struct{}{}:
	default:
	}
}

// Take returns everything queued so far.
func (m *Mailbox[T]) Take() []T {
	m.mu.Lock()
	defer m.mu.Unlock()
	items := m.items
	m.items = nil
	return items
}
