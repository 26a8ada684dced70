// Package rooms is the pure room state machine of Parley: the bodies of
// control events (create, member, power, join rules, room and user
// profile, redaction), authorization of each event from its causal past,
// resolution of concurrent state, strong removal, and the visible timeline.
//
// It must not do I/O: no libp2p, no badger, no net, no os/exec, no wall
// clock, no global randomness (deps_test.go checks the imports). It sees
// only events the crdt package has already judged stateless-valid (R1), fed
// in a causal order; every causal order of one set of events gives the same
// state, visibility, reasons and timeline (the property tests check it).
//
// # Rules (docs/design.md §3)
//
//   - R2 (as far as a room sees it): parents and auth events known and
//     causally valid, same room, depth = 1 + max parent depth, self chain
//     (same device, seq+1). Otherwise refused; children of such events too.
//   - R3: Authorize (auth.go) judges an event twice, against the resolved
//     state before it and against its auth references alone (create, power,
//     join rule, sender's and target's member events; one each; accepted; in
//     the event's past). Membership: join needs an invite, a public room, the
//     DM user or the creator; knock needs join rule "knock"; invite needs
//     the invite level and a target neither joined nor banned; leave is for
//     joined, invited or knocking users; kick needs the kick level and more
//     power than the target; ban needs the ban level and more power than the
//     target; unban needs the ban level. Power: default levels admin 100,
//     moderator 50, member 0; invite, kick, ban, redact and state 50,
//     messages 0, power events 100; a sender changes only levels below its
//     own (or its own, downwards) and never to above its own. The creator
//     has infinite power and can be neither kicked, banned nor demoted.
//     Redaction: of a non-state event in the redaction's past, by its
//     sender, or by anyone at the redact level. Profiles: one's own only.
//   - R4: state resolution (resolve.go): Matrix v2.1 ordering with (sender
//     level desc, depth asc, ID asc) tie-breaks, mainline order for other
//     state, partial state starting empty, cached per set of snapshots and
//     run only where parents' states differ.
//   - R5/R6: strong removal and equivocation (overlay.go): a ban, kick or
//     demotion hides the target's concurrent events (for a demotion, those
//     that needed more than the new level) and, transitively, the events
//     whose auth references relied on them; a device removal (encrypted
//     rooms) does the same for the removed device's events outside its
//     past, its user's other devices untouched (a removed device is never
//     re-added, so nothing exempts them; one whose state already holds the
//     removal is refused by the key rules); a device that signed two
//     events with one seq loses its events from that seq on.
//   - Join work (work.go): a room.limits event asking for join proof of
//     work hides strangers' joins and knocks concurrent with it that lack
//     the work (an overlay step after the removals), and state resolution
//     orders room.limits with the power events and re-checks member
//     events against the partial state's join work, so the resolved state
//     drops such a join where it meets the limits event.
//   - R6 in the state (equivocation.go): a state knows the forks in its
//     past (S(E): both events of the fork in past(E); the heads: every fork
//     in the room). It excludes the void set of those forks: the forked
//     devices' events from the fork seq on, plus, transitively, every event
//     that needed one of them, i.e. whose auth references no longer allow
//     it once the void event is replaced by the latest non-void event of
//     its key history. So an invite by an admin who then forked is void,
//     the invitee's join that relied on it too, and so are the invitee's
//     messages; a kick by a user whose power came from the forker's power
//     event is void. Events that only reference a void event (every message
//     referencing the forker's power event) stay: no blow-up. An event that
//     knows the fork is judged against the cleaned state, so it stands or
//     falls on its own and never needs a void event. Each event's place in
//     the void set is a function of its past, so state and timeline stay
//     functions of the event set; the timeline hides exactly the state's
//     void set. Fork points are (device, seq, self): two events with one
//     (device, seq) but different self events imply a fork lower down.
//   - Keys (keys.go; docs/design.md §5.2-5.3, docs/protocol.md §5.1): in
//     an end-to-end encrypted room (create body e2ee), devices announce
//     their KEM records in `device` state events; the member device set at
//     a view is the joined users' announced, non-removed devices. A
//     rotation (a `rotate` event, or embedded in a kick or ban of a joined
//     member, a device removal, or a `joined` room's device announcement)
//     must wrap to exactly that set at its causal view (after the embedding
//     operation), by a member device. Cuts (removals of joined members,
//     device removals, and announcements in `joined` rooms) bound which
//     epochs a sealed event or key forward may use: the epoch's rotation
//     must be in the event's past and descend from every cut in it. A
//     removal that hides an add (invite, join, device announcement) counts
//     as a cut too for events that have both in their past (an overlay
//     step, as the add's fate depends on the whole event set: such an
//     event is hidden, not refused, and AdmissibleEpochs leaves the epoch
//     out). State resolution orders device removals with the power events
//     (before their user's other ones) and applies no event of a device,
//     nor announcement, once the partial state holds the device's removal.
//     Room name, topic, avatar, user profiles and every content type are
//     sealed; the rules never read sealed values.
//
// # Limits
//
//   - Keys: a rotation hidden by strong removal still introduces its
//     epoch, and a hidden removal still counts as a cut. A removed
//     device's concurrent power event can still reach the resolved state
//     when the power ordering puts it before the removal (only ties of
//     sender level put device removals first; the overlay hides it all the
//     same). A removal that is itself refused in the partial state (its
//     user's membership lost concurrently) lets the device's announcement
//     stand there.
//   - Mutual removals across branches are settled greedily in removal
//     order (the earlier removal hides the later one), not p2panda's "both
//     apply". Changing only the overlay would be convergent but would show
//     a removal that R4's iterative auth checks refuse (the first removal
//     takes the second sender's membership or level away in the partial
//     state), so timeline and state would disagree; "both apply" needs R4
//     to exempt mutual pairs too.
//   - R5 does not remove anything from the resolved state (it relies on
//     R4's ordering, which for device removals includes the two checks
//     above); only R6 does.
//   - A redaction hidden later by strong removal un-redacts its target in
//     Redacted(), but a purged body stays purged.
package rooms
