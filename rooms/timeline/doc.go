// Package timeline projects a room's messages into what a client shows:
// each message with its edits applied, its reactions aggregated per key,
// its reply and thread references, and the users whose read marker stands
// on it (docs/design.md §7, issue 5).
//
// Its input is a set of items (message events carrying MIMI content, see
// package mimi, with their place in the log's (depth, ID) linearization),
// redactions (events whose content is gone) and read receipts. Relations
// between messages are MIMI message IDs; the projection resolves them to
// events. The output is a function of that set alone: adding the same
// items, redactions and receipts in any order, edits and reactions before
// their targets included, gives the same messages, versions, threads and
// reasons (the convergence tests check it).
//
// # Rules
//
//   - A MIMI message ID belongs to the item with the smallest position
//     that carries it; later copies are ignored ("duplicate message id").
//   - Edits and deletions count only when sent by the original's sender
//     and placed after it. The edit with the greatest position wins; the
//     original and every edit stay listable (Versions) in position order.
//     One deletion deletes the message for good; the projection then shows
//     neither body nor versions nor reactions. An edit changes the body
//     only: reply and thread references are the original's.
//   - A reaction is a (user, key) vote on a message that is live until an
//     unreaction by the same user names it (observed-remove: a new reaction
//     event with the same key on another node survives). A redacted
//     reaction, and every reaction to a redacted or deleted message,
//     disappears; a redacted unreaction gives its reaction back.
//   - A redacted item keeps its ID, sender and place, and nothing of its
//     content: a redacted message is listed as redacted, without relations;
//     a redacted edit, reaction or unreaction has no effect. An item whose
//     content was purged before it was added (nil content) is listed as a
//     redacted message, its kind being unknown.
//   - Replies and thread replies keep their reference when the target is
//     redacted or deleted (Ref.Redacted) or not known yet (Ref.Event "").
//     A thread reply is listed both in Messages and in Thread(root), and
//     its inReplyTo makes it a reply where threads are not shown.
//   - A message mentions the users its parley.mentions list names and
//     those its sanitized rich text links to as parley:user/ID (MIMI §5.4),
//     malformed IDs left out. The shown version's mentions count: an
//     edit's mentions replace the original's; each version keeps its own.
//   - A read receipt is a last-writer-wins register per user, ordered by
//     the position of the event read; it is shown on the last listed
//     message at or before that position.
//
// It must not do I/O: no libp2p, no badger, no net, no os, no wall clock,
// no global randomness (deps_test.go checks the imports). It does not
// decide who may send, redact or read (package rooms does), and it does
// not check that a MIMI sender URI names the event's sender: edits and
// unreactions are judged by the event senders the caller passes in.
//
// A Projection is not safe for concurrent use.
package timeline
