package node

// The stored search index (docs/design.md §2, "Search index"): a blind inverted index of
// the messages this node can read, in its local store next to the
// plaintext it decrypted.
//
// Each message event (an original or an edit, in a plaintext room or
// decrypted in an encrypted one) posts its words under its own event ID:
//
//	s/t/<H(room, kind, word)><event ID>   ""
//
// where H is HMAC-SHA256 under the index key, truncated to 16 bytes, kind
// 'w' for a whole word and 'p' for a prefix of 3 or 5 runes of a longer
// word. The room is part of what is hashed, so the same word in two rooms
// gives unrelated keys. No word, no text and no count of words is stored;
// the index key (random, 32 bytes) is kept sealed at rest under the
// device's local sealing key, like the epoch secrets (s/key), and the
// index's format and whether it was closed cleanly under s/state. A query
// reads the postings of its words, intersects them, and confirms each hit
// against the room's projection (the current text, edits applied, redacted,
// deleted and blocked messages left out), so a stale posting (an old
// version's words) is never shown.
//
// Upkeep is the background indexer's (indexer.go): a message is indexed
// when it is accepted readable or decrypted (late decryption included),
// with a done mark (s/d/<id>) after its postings; a redaction's postings
// are listed in a tombstone (s/r/<id>) before the body and plaintext are
// purged, and deleted by the indexer. An index that is missing or of
// another format is rebuilt at start; one that was not closed cleanly is
// caught up (what has no done mark is indexed).

import (
	"bytes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/text/unicode/norm"

	"github.com/parley-p2p/parley/crdt"
)

const (
	// indexFormat changes whenever tokenization or the key layout does;
	// an index of another format is rebuilt.
	// 2: prefixes of 3 and 5 runes only (1 had 3 to 6: 40 % more keys
	// and MACs per word for the same answers after confirmation).
	// 3: a done mark per indexed event (s/d/) and redaction tombstones
	// (s/r/), for the background indexer (indexer.go).
	indexFormat   = 3
	indexHashLen  = 16
	indexPrefixLo = 3  // runes: shorter last words are looked up whole
	indexPrefixHi = 5  // runes: longer prefixes use their first 5 and are confirmed
	indexMaxWord  = 64 // runes: longer words are cut
	// indexMaxWords bounds the distinct words of one message that are
	// indexed (a 62 kB message holds at most about 10,000).
	indexMaxWords = 4096
	indexFlushAt  = 1 << 15 // pending writes that force a flush
)

// indexLookupCap bounds the postings a query reads per word; a word posted
// more often is common, and is only checked in the confirmation (a
// variable for tests).
var indexLookupCap = 2000

var (
	indexKeyName   = []byte("s/key")
	indexStateName = []byte("s/state")
	indexPostings  = []byte("s/t/")
	indexDone      = []byte("s/d/") // s/d/<event ID>: the event's postings are on disk
	indexTombs     = []byte("s/r/") // s/r/<event ID> -> its postings' hashes: delete them (a redaction)
)

func indexDoneKey(id crdt.EventID) []byte { return append(bytes.Clone(indexDone), id...) }
func indexTombKey(id crdt.EventID) []byte { return append(bytes.Clone(indexTombs), id...) }

// Index states under s/state, after the format byte.
const (
	indexOpen   = 'o' // in use, or the node stopped without closing it
	indexClosed = 'c' // closed cleanly: every write reached the store
)

// localBatch is a LocalStore that writes many values at once
// (badgerstore.Store, crdt.MemStore, MemLocal).
type localBatch interface {
	WriteLocal(ws []crdt.LocalWrite) error
}

// WriteLocal applies many writes at once (the search index's batches).
func (s *MemLocal) WriteLocal(ws []crdt.LocalWrite) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range ws {
		if w.Delete {
			delete(s.m, string(w.Key))
		} else {
			s.m[string(w.Key)] = bytes.Clone(w.Value)
		}
	}
	return nil
}

// searchIndex is the blind inverted index. The indexer's goroutine owns
// the one that writes (indexer.go); the engine's goroutine reads through
// its own (reader), for queries and redaction tombstones.
type searchIndex struct {
	local   LocalStore
	key     []byte // the index key (kept for reader)
	mac     hash.Hash
	pending []crdt.LocalWrite
	broken  bool   // a write failed: rebuild at the next open
	sealed  []byte // a new index key, sealed, to store with the first postings (nil once stored)
	fresh   bool   // at open: missing or of another format (rebuilt), not only left open by a crash (caught up)
	// The blind keys of words and prefixes posted lately in termRoom
	// (postings): words recur from message to message, so most postings
	// need no MAC. At most indexTermCache of each kind are kept.
	termRoom    crdt.RoomID
	wordTerms   map[string][indexHashLen]byte
	prefixTerms map[string][indexHashLen]byte
}

// indexTermCache bounds the cached blind keys of words, and of prefixes.
const indexTermCache = 1 << 14

// openSearchIndex opens the index in local and reports whether it must be
// rebuilt (ix.fresh) or caught up (it was not closed cleanly). A new index key is stored with the first postings, so a node
// that indexes nothing (a blind host) writes nothing.
func openSearchIndex(local LocalStore, atRest cipher.AEAD, rnd io.Reader) (*searchIndex, bool, error) {
	state, err := local.GetLocal(indexStateName)
	if err != nil && !errors.Is(err, crdt.ErrNotFound) {
		return nil, false, fmt.Errorf("read search index state: %w", err)
	}
	rebuild := !bytes.Equal(state, []byte{indexFormat, indexClosed})
	key, sealed, err := indexKey(local, atRest, rnd)
	if err != nil {
		return nil, false, err
	}
	ix := &searchIndex{local: local, key: key, mac: hmac.New(sha256.New, key), sealed: sealed}
	ix.fresh = len(state) == 0 || state[0] != indexFormat || sealed != nil
	if sealed == nil {
		if err := local.PutLocal(indexStateName, []byte{indexFormat, indexOpen}); err != nil {
			return nil, false, fmt.Errorf("write search index state: %w", err)
		}
	}
	return ix, rebuild, nil
}

// reader returns an index on the same store and key with its own MAC,
// for another goroutine: it looks postings up and computes keys, and
// writes nothing.
func (ix *searchIndex) reader() *searchIndex {
	return &searchIndex{local: ix.local, key: ix.key, mac: hmac.New(sha256.New, ix.key)}
}

// indexKey reads the sealed index key, or makes a new one and returns it
// sealed too, for storing.
func indexKey(local LocalStore, atRest cipher.AEAD, rnd io.Reader) (key, sealed []byte, err error) {
	n := chacha20poly1305.NonceSizeX
	stored, err := local.GetLocal(indexKeyName)
	switch {
	case err == nil:
		if len(stored) < n {
			return nil, nil, errors.New("node: stored search index key is damaged")
		}
		key, err := atRest.Open(nil, stored[:n], stored[n:], indexKeyName)
		if err != nil {
			return nil, nil, errors.New("node: stored search index key does not open (wrong device key?)")
		}
		return key, nil, nil
	case !errors.Is(err, crdt.ErrNotFound):
		return nil, nil, fmt.Errorf("read search index key: %w", err)
	}
	buf := make([]byte, n+32)
	if _, err := io.ReadFull(rnd, buf); err != nil {
		return nil, nil, fmt.Errorf("read randomness: %w", err)
	}
	nonce, key := buf[:n], buf[n:]
	return key, atRest.Seal(bytes.Clone(nonce), nonce, key, indexKeyName), nil
}

// words calls fn with each distinct word of s, at most indexMaxWords: s is
// put in Unicode normal form NFKC and lower-cased, and a word is a run of
// letters, digits and marks, cut at indexMaxWord runes.
func words(s string, fn func(w string)) {
	seen := map[string]bool{}
	for _, w := range strings.FieldsFunc(strings.ToLower(norm.NFKC.String(s)), notWordRune) {
		w = cutWord(w)
		if seen[w] {
			continue
		}
		if len(seen) == indexMaxWords {
			return
		}
		seen[w] = true
		fn(w)
	}
}

func notWordRune(r rune) bool {
	return !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.IsMark(r)
}

func cutWord(w string) string { return firstRunes(w, indexMaxWord) }

// firstRunes returns w's first n runes.
func firstRunes(w string, n int) string {
	i := 0
	for j := range w {
		if i == n {
			return w[:j]
		}
		i++
	}
	return w
}

// prefixes calls fn with w's proper prefixes of indexPrefixLo and
// indexPrefixHi runes.
func prefixes(w string, fn func(p string)) {
	n := 0
	for i := range w {
		if n == indexPrefixLo || n == indexPrefixHi {
			fn(w[:i])
		}
		n++
	}
}

// prefixTerm is the indexed prefix a query's last word w is looked up by:
// its first indexPrefixHi runes, or indexPrefixLo when it is shorter. The
// candidates are confirmed against the text.
func prefixTerm(w string) string {
	if utf8.RuneCountInString(w) >= indexPrefixHi {
		return firstRunes(w, indexPrefixHi)
	}
	return firstRunes(w, indexPrefixLo)
}

// term is the blind key of a word ('w') or prefix ('p') in a room.
func (ix *searchIndex) term(room crdt.RoomID, kind byte, s string) []byte {
	ix.mac.Reset()
	ix.mac.Write([]byte{byte(len(room))})
	ix.mac.Write([]byte(room))
	ix.mac.Write([]byte{kind})
	ix.mac.Write([]byte(s))
	return ix.mac.Sum(append([]byte(nil), indexPostings...))[:len(indexPostings)+indexHashLen]
}

// postings calls fn with every posting key of text in room.
func (ix *searchIndex) postings(room crdt.RoomID, id crdt.EventID, text string, fn func(k []byte)) {
	if room != ix.termRoom || ix.wordTerms == nil {
		ix.termRoom, ix.wordTerms, ix.prefixTerms = room, map[string][indexHashLen]byte{}, map[string][indexHashLen]byte{}
	}
	posting := func(terms map[string][indexHashLen]byte, kind byte, w string) {
		h, ok := terms[w]
		if !ok {
			copy(h[:], ix.term(room, kind, w)[len(indexPostings):])
			if len(terms) == indexTermCache {
				clear(terms)
			}
			terms[strings.Clone(w)] = h
		}
		k := make([]byte, 0, len(indexPostings)+indexHashLen+len(id))
		fn(append(append(append(k, indexPostings...), h[:]...), id...))
	}
	words(text, func(w string) {
		posting(ix.wordTerms, 'w', w)
		prefixes(w, func(p string) { posting(ix.prefixTerms, 'p', p) })
	})
}

// add posts the words of event id's text, then its done mark (after
// its postings, so a mark on disk means they are).
func (ix *searchIndex) add(room crdt.RoomID, id crdt.EventID, text string) {
	ix.postings(room, id, text, func(k []byte) {
		ix.pending = append(ix.pending, crdt.LocalWrite{Key: k, Value: []byte{}})
	})
	ix.pending = append(ix.pending, crdt.LocalWrite{Key: indexDoneKey(id), Value: []byte{}})
}

// tombstone returns the hashes of the postings of event id's text (the
// value of its tombstone: blind, like the postings' keys).
func (ix *searchIndex) tombstone(room crdt.RoomID, id crdt.EventID, text string) []byte {
	var hs []byte
	ix.postings(room, id, text, func(k []byte) {
		hs = append(hs, k[len(indexPostings):len(indexPostings)+indexHashLen]...)
	})
	return hs
}

// bury deletes the postings a tombstone lists, the event's done mark,
// and then the tombstone.
func (ix *searchIndex) bury(id crdt.EventID, hs []byte) {
	for len(hs) >= indexHashLen {
		k := append(append(bytes.Clone(indexPostings), hs[:indexHashLen]...), id...)
		ix.pending = append(ix.pending, crdt.LocalWrite{Key: k, Delete: true})
		hs = hs[indexHashLen:]
	}
	ix.pending = append(ix.pending, crdt.LocalWrite{Key: indexDoneKey(id), Delete: true}, crdt.LocalWrite{Key: indexTombKey(id), Delete: true})
}

// remove deletes the postings of event id's text.
func (ix *searchIndex) remove(room crdt.RoomID, id crdt.EventID, text string) {
	ix.bury(id, ix.tombstone(room, id, text))
}

// full reports whether enough writes are pending to flush now.
func (ix *searchIndex) full() bool { return len(ix.pending) >= indexFlushAt }

// flush writes the pending writes in one batch. On failure the index is
// marked for a rebuild at the next open, and the writes are dropped: the
// index may miss words until then, never show what it should not (every
// hit is confirmed against the projection).
func (ix *searchIndex) flush() error {
	ws := ix.pending
	ix.pending = ws[:0:0]
	if len(ws) == 0 {
		return nil
	}
	defer func() { // the writes are done with: the next ones reuse the slice
		clear(ws)
		ix.pending = ws[:0]
	}()
	var err error
	if ix.sealed != nil { // the first postings: the key first, and the index open
		err = ix.local.PutLocal(indexKeyName, ix.sealed)
		if err == nil {
			err = ix.local.PutLocal(indexStateName, []byte{indexFormat, indexOpen})
		}
		if err != nil {
			ix.broken = true
			return fmt.Errorf("store search index key: %w", err)
		}
		ix.sealed = nil
	}
	if b, ok := ix.local.(localBatch); ok {
		err = b.WriteLocal(ws)
	} else {
		for _, w := range ws {
			if w.Delete {
				err = ix.local.DeleteLocal(w.Key)
			} else {
				err = ix.local.PutLocal(w.Key, w.Value)
			}
			if err != nil {
				break
			}
		}
	}
	if err != nil {
		ix.broken = true
		return fmt.Errorf("write search index: %w", err)
	}
	return nil
}

// close flushes and marks the index closed cleanly (unless a write
// failed, which leaves it to be rebuilt).
func (ix *searchIndex) close() error {
	if err := ix.flush(); err != nil {
		return err
	}
	if ix.broken || ix.sealed != nil {
		return nil
	}
	return ix.local.PutLocal(indexStateName, []byte{indexFormat, indexClosed})
}

// clearPostings deletes every posting, done mark and tombstone (before a
// rebuild).
func (ix *searchIndex) clearPostings() error {
	var ws []crdt.LocalWrite
	for _, p := range [][]byte{indexTombs, indexDone, indexPostings} {
		err := ix.local.ScanLocal(p, func(k, _ []byte) bool {
			ws = append(ws, crdt.LocalWrite{Key: bytes.Clone(k), Delete: true})
			return true
		})
		if err != nil {
			return fmt.Errorf("scan search index: %w", err)
		}
	}
	ix.pending = append(ix.pending, ws...)
	return ix.flush()
}

// lookup adds the events posted under one key to into, and reports
// false when into would exceed indexLookupCap.
func (ix *searchIndex) lookup(key []byte, into map[crdt.EventID]bool) (bool, error) {
	within := true
	err := ix.local.ScanLocal(key, func(k, _ []byte) bool {
		into[crdt.EventID(k[len(key):])] = true
		within = len(into) <= indexLookupCap
		return within
	})
	return within, err
}

// queryWord is one word of a parsed query.
type queryWord struct {
	w      string
	prefix bool // the last word, typed on (at least indexPrefixLo runes): any word starting with it
}

// candidates returns the events of room whose postings hold every word
// of q that is posted at most indexLookupCap times (a superset of the
// messages that match: the caller confirms each against its text). When
// every word of q is posted more often than that (common words), it
// returns nil: a scan of the room newest first finds their matches
// sooner than reading their postings would.
func (ix *searchIndex) candidates(room crdt.RoomID, q searchQuery) (map[crdt.EventID]bool, error) {
	var out map[crdt.EventID]bool
	for _, w := range q {
		got := map[crdt.EventID]bool{}
		within, err := ix.lookup(ix.term(room, 'w', w.w), got)
		if err == nil && within && w.prefix {
			within, err = ix.lookup(ix.term(room, 'p', prefixTerm(w.w)), got)
		}
		if err != nil {
			return nil, err
		}
		if !within {
			continue // common: left to the confirmation
		}
		if out == nil {
			out = got
		} else {
			for id := range out {
				if !got[id] {
					delete(out, id)
				}
			}
		}
		if len(out) == 0 {
			return out, nil
		}
	}
	return out, nil
}

// matches reports whether text holds every word of q (the last as a
// prefix when it is typed on).
func (q searchQuery) matches(text string) bool {
	have := map[string]bool{}
	var all []string
	words(text, func(w string) { have[w] = true; all = append(all, w) })
	for _, w := range q {
		if have[w.w] {
			continue
		}
		if !w.prefix {
			return false
		}
		found := false
		for _, h := range all {
			if strings.HasPrefix(h, w.w) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
