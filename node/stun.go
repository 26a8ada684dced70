package node

import (
	"context"
	"errors"
	"net"
	"strconv"
	"syscall"

	"github.com/pion/stun/v3"
	"golang.org/x/time/rate"

	"github.com/parley-p2p/parley/api"
)

// STUN (docs/protocol.md 9.3): every node answers Binding requests on a UDP
// port, so that call peers learn their address as the internet sees it
// from any member's node. With --turn the TURN relay answers them on the
// same port (turn_relay.go); without it stunServer does. Answers are
// rate-limited on the whole, so the port is no use as an amplifier.

// DefaultSTUNPort is the port a node answers STUN on unless told otherwise
// (a free one when it is taken and no address was given).
const DefaultSTUNPort = 3478

// Limits of the STUN answerer.
const (
	stunRate  = 200 // answers per second, all clients together ...
	stunBurst = 400
	stunMTU   = 1500
)

// stunServer answers STUN Binding requests on a UDP socket it owns.
type stunServer struct {
	conn net.PacketConn
	lim  *rate.Limiter
}

func newSTUNServer(conn net.PacketConn) *stunServer {
	return &stunServer{conn: conn, lim: rate.NewLimiter(stunRate, stunBurst)}
}

// Serve answers until ctx is done, then closes the socket.
func (s *stunServer) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.conn.Close() })
	defer stop()
	defer s.conn.Close()
	buf := make([]byte, stunMTU)
	for {
		n, from, err := s.conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		out, ok := stunAnswer(buf[:n], from)
		if ok && s.lim.Allow() {
			s.conn.WriteTo(out, from)
		}
	}
}

// stunAnswer is the answer to datagram b from address from: a Binding
// success with the XOR-MAPPED-ADDRESS of from, for a well-formed Binding
// request; nothing for anything else.
func stunAnswer(b []byte, from net.Addr) ([]byte, bool) {
	ua, ok := from.(*net.UDPAddr)
	if !ok || !stun.IsMessage(b) {
		return nil, false
	}
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if err := m.Decode(); err != nil || m.Type != stun.BindingRequest {
		return nil, false
	}
	resp, err := stun.Build(stun.NewTransactionIDSetter(m.TransactionID), stun.BindingSuccess,
		&stun.XORMappedAddress{IP: ua.IP, Port: ua.Port}, stun.NewSoftware("parley"), stun.Fingerprint)
	if err != nil {
		return nil, false
	}
	return resp.Raw, true
}

// listenSTUN opens the STUN (and TURN) socket: on addr when given, else on
// ip at DefaultSTUNPort, or a free port when that one is taken.
func listenSTUN(addr string, ip net.IP) (net.PacketConn, error) {
	if addr != "" {
		conn, err := net.ListenPacket("udp4", addr)
		if err != nil {
			return nil, errorf(api.KindInvalid, "stun address %q: %v", addr, err)
		}
		return conn, nil
	}
	host := ip.String()
	conn, err := net.ListenPacket("udp4", net.JoinHostPort(host, strconv.Itoa(DefaultSTUNPort)))
	if errors.Is(err, syscall.EADDRINUSE) {
		conn, err = net.ListenPacket("udp4", net.JoinHostPort(host, "0"))
	}
	return conn, err
}
