package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/mediasvc"
	"github.com/parley-p2p/parley/node/p2p"
)

// Reasons an offered event is not taken (parley_events_rejected_total).
const (
	RejectInvalid         = "invalid"          // causally invalid (R2: depth, self chain, room)
	RejectUnauthorized    = "unauthorized"     // stored, but refused by the auth rules (R3): no effect
	RejectOrphanBudget    = "orphan_budget"    // the sending peer's orphan budget is spent
	RejectOrphanEvicted   = "orphan_evicted"   // an orphan evicted by the buffer's bounds
	RejectGossipInvalid   = "gossip_invalid"   // gossip: undecodable, bad signature, other room
	RejectGossipThrottled = "gossip_throttled" // gossip: validation queue full or throttled
	RejectGossipOther     = "gossip_other"     // gossip: any other pubsub refusal
)

// RejectSyncInvalid is pull sync's reason: a page with an invalid event
// (the session ends).
const RejectSyncInvalid = p2p.RejectSyncInvalid

// Metrics is one node's Prometheus registry and collectors: a Tracer (with
// the EventTracer, PubSubTracer, SyncTracer and RejectTracer extensions) fed
// by the replica, API latency fed by the API server, and gauges read at
// scrape time. Each node has its own registry, so that nodes in one process
// do not collide.
type Metrics struct {
	reg        *prometheus.Registry
	ingested   *prometheus.CounterVec
	rejected   *prometheus.CounterVec
	syncs      *prometheus.CounterVec
	syncRounds prometheus.Counter
	delivered  *prometheus.CounterVec
	duplicates prometheus.Counter
	apiLatency *prometheus.HistogramVec
	path       *gossipPath // parley_gossip_path_seconds (gossippath.go)
	handler    http.Handler
}

var (
	_ p2p.Tracer       = (*Metrics)(nil)
	_ p2p.EventTracer  = (*Metrics)(nil)
	_ p2p.PubSubTracer = (*Metrics)(nil)
	_ p2p.SyncTracer   = (*Metrics)(nil)
	_ p2p.RejectTracer = (*Metrics)(nil)
)

// NewMetrics makes a registry with Parley's collectors and the client
// library's Go and process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		ingested: counterVec("parley_events_ingested_total", "Events taken into a room's log, by source: local (authored here) or peer.",
			"source", "local", "peer"),
		rejected: counterVec("parley_events_rejected_total", "Offered events not taken, by reason (docs/operators.md).",
			"reason", RejectInvalid, RejectUnauthorized, RejectOrphanBudget, RejectOrphanEvicted, RejectGossipInvalid, RejectGossipThrottled, RejectGossipOther, RejectSyncInvalid),
		syncs: counterVec("parley_sync_sessions_total", "Pull-sync sessions (streams of the sync protocol), by role: client or server.",
			"role", "client", "server"),
		syncRounds: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_sync_rounds_total",
			Help: "Sync rounds run as client: heads compared, and pages of events ingested."}),
		delivered: counterVec("parley_gossip_delivered_total", "Gossip messages that passed validation and were delivered, by topic kind: events or heads.",
			"topic", "events", "heads"),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_gossip_duplicates_total",
			Help: "Gossip messages dropped as already seen."}),
		apiLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "parley_api_request_duration_seconds",
			Help:    "Latency of the local API's request/response methods, by method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method"}),
		path: newGossipPath(),
	}
	m.reg.MustRegister(m.ingested, m.rejected, m.syncs, m.syncRounds, m.delivered, m.duplicates, m.apiLatency, m.path.hist,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
	return m
}

// counterVec is a counter with one label, exported from zero for each of
// values (so that a rate is defined from the first scrape).
func counterVec(name, help, label string, values ...string) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{label})
	for _, x := range values {
		v.WithLabelValues(x)
	}
	return v
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler { return m.handler }

// MetricsServer is the optional separate listener (--metrics) that serves
// api.MetricsPath without a token, and nothing else.
type MetricsServer struct {
	ln net.Listener
	m  *Metrics
}

// NewMetricsServer listens on addr (HOST:PORT; any address: the operator
// chooses who may scrape).
func NewMetricsServer(addr string, m *Metrics) (*MetricsServer, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, errorf(api.KindInvalid, "metrics address %q: %v", addr, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen metrics: %w", err)
	}
	return &MetricsServer{ln: ln, m: m}, nil
}

// Addr is the address it listens on.
func (s *MetricsServer) Addr() string { return s.ln.Addr().String() }

// Loopback reports whether it listens on a loopback address only.
func (s *MetricsServer) Loopback() bool {
	a, ok := s.ln.Addr().(*net.TCPAddr)
	return ok && a.IP.IsLoopback()
}

// Serve answers scrapes until ctx is done.
func (s *MetricsServer) Serve(ctx context.Context) error {
	mux := http.NewServeMux()
	mux.Handle("GET "+api.MetricsPath, s.m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Close releases the listener of a server that never served.
func (s *MetricsServer) Close() error { return s.ln.Close() }

// Registry is the node's registry (tests read it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// gauge registers a gauge read at scrape time.
func (m *Metrics) gauge(name, help string, fn func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn))
}

// NodeState is what the scrape-time gauges read; each function must be
// safe to call from any goroutine.
type NodeState struct {
	Peers      func() int
	Rooms      func(ctx context.Context) (int, error)
	StoreBytes func() int64
	MediaBytes func() int64
}

// Watch registers the gauges of a node's state.
func (m *Metrics) Watch(s NodeState) {
	m.gauge("parley_peers", "Connected peers.", func() float64 { return float64(s.Peers()) })
	m.gauge("parley_rooms", "Rooms this node keeps (member or host).", func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := s.Rooms(ctx)
		if err != nil {
			return -1
		}
		return float64(n)
	})
	m.gauge("parley_store_bytes", "Disk space used by the event store.", func() float64 { return float64(s.StoreBytes()) })
	m.gauge("parley_media_bytes", "Disk space used by the media blob store.", func() float64 { return float64(s.MediaBytes()) })
}

// WatchBandwidth registers byte counters of the sync, media and gossip
// protocols read from libp2p's bandwidth counter.
func (m *Metrics) WatchBandwidth(bw *metrics.BandwidthCounter) {
	proto := func(name, help string, match func(protocol.ID) bool) {
		for _, dir := range []string{"in", "out"} {
			m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: name, Help: help, ConstLabels: prometheus.Labels{"direction": dir},
			}, func() float64 {
				var n int64
				for p, st := range bw.GetBandwidthByProtocol() {
					if match(p) {
						if dir == "in" {
							n += st.TotalIn
						} else {
							n += st.TotalOut
						}
					}
				}
				return float64(n)
			}))
		}
	}
	proto("parley_sync_bytes_total", "Bytes of pull-sync streams, by direction.", func(p protocol.ID) bool { return p == p2p.SyncProtocol })
	proto("parley_media_transfer_bytes_total", "Bytes of media-transfer streams, by direction.", func(p protocol.ID) bool { return p == mediasvc.Protocol })
	proto("parley_gossip_bytes_total", "Bytes of gossipsub streams, by direction.", func(p protocol.ID) bool { return strings.HasPrefix(string(p), "/meshsub/") })
}

// ObserveAPI records the latency of one API call.
func (m *Metrics) ObserveAPI(method string, d time.Duration) {
	if _, ok := api.Lookup(method); !ok {
		method = "other" // bounded label values
	}
	m.apiLatency.WithLabelValues(method).Observe(d.Seconds())
}

// EventsAccepted is counted by EventAccepted.
func (m *Metrics) EventsAccepted(crdt.RoomID, int) {}

// SyncRound counts a client round.
func (m *Metrics) SyncRound(crdt.RoomID, peer.ID) { m.syncRounds.Inc() }

// EventAccepted counts an event taken into a log.
func (m *Metrics) EventAccepted(_ crdt.RoomID, ev *crdt.Event, from peer.ID) {
	if from == "" {
		m.ingested.WithLabelValues("local").Inc()
	} else {
		m.ingested.WithLabelValues("peer").Inc()
		m.path.accepted(ev)
	}
}

// Published traces an event this node published (the gossip path trace).
func (m *Metrics) Published(ev *crdt.Event) { m.path.published(ev) }

// SyncSession counts a sync stream.
func (m *Metrics) SyncSession(_ peer.ID, server bool) {
	if server {
		m.syncs.WithLabelValues("server").Inc()
	} else {
		m.syncs.WithLabelValues("client").Inc()
	}
}

// EventsRejected counts refused events.
func (m *Metrics) EventsRejected(_ crdt.RoomID, reason string, n int) {
	m.rejected.WithLabelValues(reason).Add(float64(n))
}

// PubSubRawTracer counts gossip deliveries and refusals.
func (m *Metrics) PubSubRawTracer() pubsub.RawTracer { return (*metricsRawTracer)(m) }

type metricsRawTracer Metrics

// isEventTopic tells a room's event topic from its heads topic (roomTopic).
func isEventTopic(msg *pubsub.Message) bool { return strings.HasSuffix(msg.GetTopic(), "/ev/2") }

func (r *metricsRawTracer) DeliverMessage(msg *pubsub.Message) {
	r.path.delivered(msg)
	if msg.Local {
		return
	}
	if isEventTopic(msg) {
		r.delivered.WithLabelValues("events").Inc()
	} else {
		r.delivered.WithLabelValues("heads").Inc()
	}
}

func (r *metricsRawTracer) RejectMessage(msg *pubsub.Message, reason string) {
	r.path.dropped(msg)
	if !isEventTopic(msg) {
		return
	}
	switch reason {
	case pubsub.RejectValidationFailed, pubsub.RejectInvalidSignature, pubsub.RejectMissingSignature, pubsub.RejectUnexpectedSignature, pubsub.RejectUnexpectedAuthInfo:
		reason = RejectGossipInvalid
	case pubsub.RejectValidationQueueFull, pubsub.RejectValidationThrottled:
		reason = RejectGossipThrottled
	default:
		reason = RejectGossipOther
	}
	r.rejected.WithLabelValues(reason).Inc()
}

func (r *metricsRawTracer) DuplicateMessage(msg *pubsub.Message) {
	r.duplicates.Inc()
	r.path.duplicate(msg)
}
func (r *metricsRawTracer) AddPeer(peer.ID, protocol.ID)                         {}
func (r *metricsRawTracer) RemovePeer(peer.ID)                                   {}
func (r *metricsRawTracer) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (r *metricsRawTracer) OnClosedOutboundStream(peer.ID)                       {}
func (r *metricsRawTracer) Join(string)                                          {}
func (r *metricsRawTracer) Leave(string)                                         {}
func (r *metricsRawTracer) Graft(peer.ID, string)                                {}
func (r *metricsRawTracer) Prune(peer.ID, string)                                {}
func (r *metricsRawTracer) ValidateMessage(msg *pubsub.Message)                  { r.path.taken(msg) }
func (r *metricsRawTracer) ThrottlePeer(peer.ID)                                 {}
func (r *metricsRawTracer) UndeliverableMessage(*pubsub.Message)                 {}
func (r *metricsRawTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (r *metricsRawTracer) RecvRPC(*pubsub.RPC)                                  {}
func (r *metricsRawTracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (r *metricsRawTracer) DropRPC(*pubsub.RPC, peer.ID)                         {}
