package p2p

import pubsub "github.com/libp2p/go-libp2p-pubsub"

// The CPU a node spends on junk (issue 15): each gossip validation is timed
// on the thread it runs on, and the time of those that do not accept is
// added up (Replica.JunkCPU, the simulator's junk_cpu). A goroutine that
// the runtime moves to another thread in the middle of a validation makes
// one sample wrong (the difference of two threads' clocks); validations do
// not block, so that is rare, and a sample over maxJunkSample (no single
// validation takes that long) is dropped as one.

// junkTime adds the thread CPU time since t0 to the junk total when res is
// not Accept. Deferred by the validator.
func (g *Gossip) junkTime(t0 int64, res *pubsub.ValidationResult) {
	if *res == pubsub.ValidationAccept || t0 < 0 {
		return
	}
	if d := threadCPU() - t0; d > 0 && d < maxJunkSample {
		g.junkCPU.Add(d)
	}
}

// maxJunkSample bounds one validation's CPU time in nanoseconds (20 ms).
const maxJunkSample = 20_000_000
