package node

import (
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/crdt/badgerstore"
)

// testSealKey seals the index key in these tests (the engine uses the
// device's at-rest key).
var testSealKey = bytes.Repeat([]byte{7}, chacha20poly1305.KeySize)

func testAEAD(tb testing.TB, key []byte) cipher.AEAD {
	a, err := chacha20poly1305.NewX(key)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// testIndex opens an index in local.
func testIndex(tb testing.TB, local LocalStore) *searchIndex {
	tb.Helper()
	ix, _, err := openSearchIndex(local, testAEAD(tb, testSealKey), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return ix
}

// indexStores are the stores the index runs on: the in-memory twins and
// badger on disk; reopen gives the same store again (for badger: closed
// and opened on the same folder).
var indexStores = []struct {
	name string
	open func(tb testing.TB) (local LocalStore, reopen func() LocalStore)
}{
	{"MemLocal", func(testing.TB) (LocalStore, func() LocalStore) {
		m := NewMemLocal()
		return m, func() LocalStore { return m }
	}},
	{"MemStore", func(testing.TB) (LocalStore, func() LocalStore) {
		m := crdt.NewMemStore()
		return m, func() LocalStore { return m }
	}},
	{"badger", func(tb testing.TB) (LocalStore, func() LocalStore) {
		dir := tb.TempDir()
		open := func() *badgerstore.Store {
			s, err := badgerstore.Open(dir, badgerstore.Options{})
			if err != nil {
				tb.Fatal(err)
			}
			return s
		}
		cur := open()
		tb.Cleanup(func() { cur.Close() })
		return cur, func() LocalStore {
			cur.Close()
			cur = open()
			return cur
		}
	}},
}

// postingsOf counts the postings under event id.
func postingsOf(tb testing.TB, local LocalStore, id crdt.EventID) int {
	tb.Helper()
	n := 0
	err := local.ScanLocal(indexPostings, func(k, _ []byte) bool {
		if strings.HasSuffix(string(k), string(id)) {
			n++
		}
		return true
	})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

func mustQuery(tb testing.TB, s string) searchQuery {
	tb.Helper()
	q, err := parseSearchQuery(s)
	if err != nil {
		tb.Fatal(err)
	}
	return q
}

func candidateIDs(tb testing.TB, ix *searchIndex, room crdt.RoomID, s string) []string {
	tb.Helper()
	got, err := ix.candidates(room, mustQuery(tb, s))
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for id := range got {
		out = append(out, string(id))
	}
	slices.Sort(out)
	return out
}

// TestSearchIndexStores is the index's conformance suite, run on every
// store it may live in: words and prefixes are found per room, a removal
// leaves no posting of the event, nothing of the text is stored, and the
// index survives a clean reopen but is rebuilt after an unclean one or a
// format change.
func TestSearchIndexStores(t *testing.T) {
	for _, st := range indexStores {
		t.Run(st.name, func(t *testing.T) {
			local, reopen := st.open(t)
			ix, rebuild, err := openSearchIndex(local, testAEAD(t, testSealKey), rand.Reader)
			if err != nil || !rebuild {
				t.Fatalf("a new index: rebuild %v, %v", rebuild, err)
			}
			r1, r2 := crdt.RoomID("room-one"), crdt.RoomID("room-two")
			ix.add(r1, "e1", "Zebrafish swim in the Internationale")
			ix.add(r1, "e2", "a zebrafish, quietly")
			ix.add(r1, "e3", "Straße ＦＵＬＬＷＩＤＴＨ café")
			ix.add(r2, "e4", "zebrafish elsewhere")
			if err := ix.flush(); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				q    string
				want []string
			}{
				{"zebrafish", []string{"e1", "e2"}},
				{"ZEBRAFISH quietly", []string{"e2"}},
				{"zebra", []string{"e1", "e2"}},                 // the last word is a prefix
				{"zebra ", nil},                                 // ... unless the query ends there
				{"swim zeb", []string{"e1"}}, {"zeb swim", nil}, // only the last word is a prefix
				{"internationalist", []string{"e1"}},      // a candidate by its first 6 runes (confirmed later)
				{"straße fullwidth CAFÉ", []string{"e3"}}, // NFKC and lower case
				{"in", []string{"e1"}},                    // shorter than a prefix: a whole word
				{"elsewhere", nil},                        // another room's words
				{"nothing here", nil},
			} {
				if got := candidateIDs(t, ix, r1, c.q); !slices.Equal(got, c.want) {
					t.Errorf("%q: %v, want %v", c.q, got, c.want)
				}
			}
			if got := candidateIDs(t, ix, r2, "zebrafish"); !slices.Equal(got, []string{"e4"}) {
				t.Errorf("room two: %v", got)
			}

			// Nothing of the text is stored, in keys or values.
			err = local.ScanLocal(nil, func(k, v []byte) bool {
				for _, w := range []string{"zebra", "Zebra", "quiet", "swim", "Inter", "inter", "caf"} {
					if bytes.Contains(k, []byte(w)) || bytes.Contains(v, []byte(w)) {
						t.Errorf("the store holds %q in %q", w, k)
					}
				}
				return true
			})
			if err != nil {
				t.Fatal(err)
			}

			// A removal leaves nothing of the event.
			if postingsOf(t, local, "e2") == 0 {
				t.Fatal("no postings of e2")
			}
			ix.remove(r1, "e2", "a zebrafish, quietly")
			if err := ix.flush(); err != nil {
				t.Fatal(err)
			}
			if n := postingsOf(t, local, "e2"); n != 0 {
				t.Fatalf("%d postings of e2 left after its removal", n)
			}
			if got := candidateIDs(t, ix, r1, "zebrafish"); !slices.Equal(got, []string{"e1"}) {
				t.Fatalf("after the removal: %v", got)
			}

			// A clean close keeps the index and its key.
			if err := ix.close(); err != nil {
				t.Fatal(err)
			}
			local = reopen()
			ix, rebuild, err = openSearchIndex(local, testAEAD(t, testSealKey), rand.Reader)
			if err != nil || rebuild {
				t.Fatalf("reopened after a clean close: rebuild %v, %v", rebuild, err)
			}
			if got := candidateIDs(t, ix, r1, "zebrafish"); !slices.Equal(got, []string{"e1"}) {
				t.Fatalf("after reopening: %v", got)
			}
			// Not closed (a crash): rebuilt.
			local = reopen()
			if _, rebuild, err = openSearchIndex(local, testAEAD(t, testSealKey), rand.Reader); err != nil || !rebuild {
				t.Fatalf("reopened after a crash: rebuild %v, %v", rebuild, err)
			}
			// Another format: rebuilt.
			if err := local.PutLocal(indexStateName, []byte{indexFormat + 1, indexClosed}); err != nil {
				t.Fatal(err)
			}
			if _, rebuild, err = openSearchIndex(local, testAEAD(t, testSealKey), rand.Reader); err != nil || !rebuild {
				t.Fatalf("another format: rebuild %v, %v", rebuild, err)
			}
			// The key is sealed: another device's sealing key does not open it.
			other := bytes.Repeat([]byte{8}, chacha20poly1305.KeySize)
			if _, _, err := openSearchIndex(local, testAEAD(t, other), rand.Reader); err == nil || !strings.Contains(err.Error(), "does not open") {
				t.Fatalf("a wrong sealing key: %v", err)
			}
		})
	}
}

// TestSearchWords: the tokenizer's words.
func TestSearchWords(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"Hello, World! hello", []string{"hello", "world"}},
		{"ﬁne Ｔｅｓｔ ①", []string{"fine", "test", "1"}},
		{"naïve e\u0301clair", []string{"naïve", "éclair"}},
		{"ÀB-cd_ef's", []string{"àb", "cd", "ef", "s"}},
		{"Привет мир", []string{"привет", "мир"}},
		{"  \t\n", nil},
		{strings.Repeat("x", 100), []string{strings.Repeat("x", indexMaxWord)}},
	} {
		var got []string
		words(c.in, func(w string) { got = append(got, w) })
		if !slices.Equal(got, c.want) {
			t.Errorf("%q: %q, want %q", c.in, got, c.want)
		}
	}
	var ps []string
	prefixes("zebrafish", func(p string) { ps = append(ps, p) })
	if !slices.Equal(ps, []string{"zeb", "zebra"}) {
		t.Errorf("prefixes: %q", ps)
	}
}

// BenchmarkSearchIndex: indexing n messages shaped like the import
// benchmark's (one write batch per 2,000, as an import step gives) into
// badger on disk, reported per message; and one query of a word in every
// message, of a word in every 1,000th, and of a prefix, reported in ms.
func BenchmarkSearchIndex(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			s, err := badgerstore.Open(b.TempDir(), badgerstore.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ix := testIndex(b, s)
			room := crdt.RoomID("bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
			id := func(i int) crdt.EventID { return crdt.EventID(fmt.Sprintf("%036d", i)) }
			start := time.Now()
			for i := range n {
				word := "hay"
				if i%1000 == 999 {
					word = "needle"
				}
				ix.add(room, id(i), fmt.Sprintf("message number %d of the generated export with a %s", i+1, word))
				if i%2000 == 1999 {
					if err := ix.flush(); err != nil {
						b.Fatal(err)
					}
				}
			}
			if err := ix.flush(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(time.Since(start).Microseconds())/float64(n), "µs/indexed")
			for _, q := range []string{"message", "needle", "gener"} {
				b.Run(q, func(b *testing.B) {
					query := mustQuery(b, q)
					start := time.Now()
					for range b.N {
						if _, err := ix.candidates(room, query); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/query")
				})
			}
		})
	}
}
