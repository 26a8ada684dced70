package p2p

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/multiformats/go-multistream"
)

// Bounds of the time an older connection has to answer a ping
// (DropStaleConns): staleRTTs round trips of the new connection, at least
// staleMinWait, at most StaleConnTimeout.
const (
	StaleConnTimeout = 3 * time.Second
	staleMinWait     = 500 * time.Millisecond
	staleRTTs        = 10
)

// DropStaleConns pings, each on its own connection, the direct connections
// to c's peer that are older than c, and closes those that do not answer;
// it returns how many it closed. A peer dials a new connection when it
// holds none: it restarted (a crash sends no close, and over QUIC nothing
// ends the old connection before the idle timeout, 30 s), or its network
// changed. Until the old connection is closed, the swarm opens this node's
// new streams to the peer on it (it prefers the connection with more
// streams, and the old one still carries pubsub's), where they wait for
// the timeout: the pull that fetches the restarted peer's first message,
// pubsub's writer. An older connection has staleRTTs round trips of c to
// answer (c is pinged first: the same peer on a path known to work),
// within [staleMinWait, timeout]; if c does not answer within timeout,
// nothing is closed. Older limited (relayed) connections are left alone:
// the swarm prefers a direct one anyway.
func DropStaleConns(ctx context.Context, nw network.Network, c network.Conn, timeout time.Duration) int {
	p, opened := c.RemotePeer(), c.Stat().Opened
	var older []network.Conn
	for _, old := range nw.ConnsToPeer(p) {
		if old != c && !old.IsClosed() && !old.Stat().Limited && old.Stat().Opened.Before(opened) {
			older = append(older, old)
		}
	}
	if len(older) == 0 {
		return 0
	}
	start := time.Now()
	// c may be limited (the peer came back through a relay): a ping is
	// 64 bytes of the circuit's budget.
	if pingConn(network.WithAllowLimitedConn(ctx, "stale connection check"), c, timeout) != nil {
		return 0
	}
	wait := min(max(staleRTTs*time.Since(start), staleMinWait), timeout)
	closed := 0
	for _, old := range older {
		if err := pingConn(ctx, old, wait); err != nil {
			if ctx.Err() != nil {
				return closed
			}
			old.Close()
			closed++
		}
	}
	return closed
}

// pingConn runs libp2p's ping protocol once on conn itself.
func pingConn(ctx context.Context, conn network.Conn, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s, err := conn.NewStream(ctx)
	if err != nil {
		return fmt.Errorf("open ping stream: %w", err)
	}
	defer s.Reset()
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	if err := multistream.SelectProtoOrFail(ping.ID, s); err != nil {
		return fmt.Errorf("select ping: %w", err)
	}
	out := make([]byte, ping.PingSize)
	rand.Read(out)
	if _, err := s.Write(out); err != nil {
		return fmt.Errorf("write ping: %w", err)
	}
	in := make([]byte, ping.PingSize)
	if _, err := io.ReadFull(s, in); err != nil {
		return fmt.Errorf("read pong: %w", err)
	}
	if !bytes.Equal(in, out) {
		return fmt.Errorf("ping answered with other bytes")
	}
	return nil
}
