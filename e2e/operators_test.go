package e2e

import (
	"bufio"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/parley-p2p/parley/api"
)

// scrape GETs a metrics URL (with the bearer token when tok is set) and
// returns the series as "name{labels}" -> value.
func scrape(url, tok string) (map[string]float64, int, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return nil, resp.StatusCode, nil
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, 0, fmt.Errorf("bad metrics line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, 0, fmt.Errorf("bad metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out, resp.StatusCode, sc.Err()
}

func apiInfo(t *testing.T, d *daemon) api.Info {
	t.Helper()
	var info api.Info
	b, err := os.ReadFile(filepath.Join(d.home, api.InfoFile))
	if err == nil {
		err = json.Unmarshal(b, &info)
	}
	if err != nil {
		t.Fatalf("%s: api file: %v", d.name, err)
	}
	return info
}

var metricsLine = regexp.MustCompile(`(?m)^metrics  (http://\S+/metrics)$`)

// TestMetricsMove: /metrics on the API (behind the token) and on the
// separate --metrics listener (set here in the home's config.yaml) shows
// every metric of issue 14, and the counters move when messages flow
// between two daemons. The daemons' logs (JSON on A, text on B, both at
// debug) and the CLI's output then hold no API token, no link code or its
// secret, and no key of the identity files.
func TestMetricsMove(t *testing.T) {
	t.Parallel()
	a := newDaemon(t, "A", t.TempDir())
	// log-level in the file loses to the --log-level flag on the command line.
	conf := "# operator settings\nmetrics: 127.0.0.1:0\nlog-format: json\nlog-level: error\n"
	if err := os.WriteFile(filepath.Join(a.home, "config.yaml"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	a.args = []string{"--log-level", "debug"}
	a.start()
	b := newDaemon(t, "B", t.TempDir())
	b.args = []string{"--log-level", "debug"}
	b.start()

	m := metricsLine.FindStringSubmatch(a.log.String())
	if m == nil {
		t.Fatalf("A's banner names no metrics listener (config.yaml not applied?):\n%s", a.log.String())
	}
	sepURL := m[1]
	if !strings.Contains(a.log.String(), `"msg":"ready"`) {
		t.Fatalf("A does not log JSON at info or below (config log-format, or the flag's log-level did not win):\n%s", a.log.String())
	}
	ia, ib := apiInfo(t, a), apiInfo(t, b)
	if _, code, err := scrape(ia.URL+api.MetricsPath, ""); err != nil || code != http.StatusForbidden && code != http.StatusUnauthorized {
		t.Fatalf("/metrics on the API without the token: status %d, %v (want refused)", code, err)
	}
	if _, code, err := scrape(ia.URL+api.MetricsPath, "wrong"); err != nil || code == http.StatusOK {
		t.Fatalf("/metrics on the API with a wrong token: status %d, %v (want refused)", code, err)
	}
	before, code, err := scrape(sepURL, "")
	if err != nil || code != http.StatusOK {
		t.Fatalf("scrape %s: status %d, %v", sepURL, code, err)
	}
	for _, name := range []string{
		`parley_events_ingested_total{source="peer"}`, `parley_events_rejected_total{reason="invalid"}`,
		`parley_events_rejected_total{reason="unauthorized"}`, `parley_events_rejected_total{reason="gossip_invalid"}`,
		`parley_sync_sessions_total{role="client"}`, `parley_sync_bytes_total{direction="in"}`,
		`parley_gossip_delivered_total{topic="events"}`, `parley_peers`, `parley_rooms`, `parley_store_bytes`,
		`parley_media_bytes`, `go_goroutines`, `process_resident_memory_bytes`,
	} {
		if _, ok := before[name]; !ok {
			t.Errorf("metric %s missing", name)
		}
	}
	if before[`parley_store_bytes`] <= 0 {
		t.Errorf("parley_store_bytes %v", before[`parley_store_bytes`])
	}
	bBefore, code, err := scrape(ib.URL+api.MetricsPath, ib.Token)
	if err != nil || code != http.StatusOK {
		t.Fatalf("scrape B's API /metrics with its token: status %d, %v", code, err)
	}

	var rr api.RoomResp
	a.must(&rr, "room", "create", "--name", "metrics", "--public")
	b.must(nil, "room", "join", rr.Room, "--via", a.addr)
	const n = 5
	for i := range n {
		a.must(nil, "send", rr.Room, fmt.Sprintf("metrics message %d", i))
	}
	var after, bAfter map[string]float64
	eventually(t, convergeTimeout, "B's counters move", func() error {
		evs, err := b.history(rr.Room)
		if err != nil {
			return err
		}
		if len(evs) < n {
			return fmt.Errorf("B holds %d messages", len(evs))
		}
		if bAfter, _, err = scrape(ib.URL+api.MetricsPath, ib.Token); err != nil {
			return err
		}
		if got := bAfter[`parley_gossip_delivered_total{topic="events"}`]; got == 0 {
			a.must(nil, "send", rr.Room, "one more, for gossip") // B's mesh may form after the first sends
			return fmt.Errorf("no gossip delivery on B yet")
		}
		return nil
	})
	after, _, err = scrape(sepURL, "")
	if err != nil {
		t.Fatal(err)
	}
	moved := func(who string, x, y map[string]float64, name string, by float64) {
		t.Helper()
		if y[name]-x[name] < by {
			t.Errorf("%s: %s went %v -> %v (want +%v or more)", who, name, x[name], y[name], by)
		}
	}
	moved("A", before, after, `parley_events_ingested_total{source="local"}`, n+1) // the create event and the messages
	moved("B", bBefore, bAfter, `parley_events_ingested_total{source="peer"}`, n+1)
	moved("B", bBefore, bAfter, `parley_gossip_delivered_total{topic="events"}`, 1)
	moved("A", before, after, `parley_rooms`, 1)
	moved("A", before, after, `parley_peers`, 1)
	moved("A", before, after, `parley_api_request_duration_seconds_count{method="send"}`, n)
	if after[`parley_sync_sessions_total{role="client"}`]+after[`parley_sync_sessions_total{role="server"}`] == 0 {
		t.Errorf("A counts no sync session after B joined through it")
	}
	// libp2p's bandwidth counter adds up once a second.
	eventually(t, convergeTimeout, "byte counters move", func() error {
		x, _, err := scrape(sepURL, "")
		if err != nil {
			return err
		}
		y, _, err := scrape(ib.URL+api.MetricsPath, ib.Token)
		if err != nil {
			return err
		}
		if x[`parley_sync_bytes_total{direction="in"}`]+x[`parley_sync_bytes_total{direction="out"}`] == 0 {
			return fmt.Errorf("A counts no sync bytes")
		}
		if y[`parley_gossip_bytes_total{direction="in"}`] == 0 {
			return fmt.Errorf("B counts no gossip bytes")
		}
		return nil
	})

	// Secrets: a link code (and its secret) goes through A's logs too.
	var code2 api.DeviceLinkResp
	a.must(&code2, "device", "link")
	joined := runCLI(t.TempDir(), "", "device", "join", code2.Code)
	if joined.code != 0 {
		t.Fatalf("device join: %v", joined)
	}
	logs := a.log.String() + b.log.String() + joined.stdout + joined.stderr
	secrets := map[string][]byte{"A's API token": []byte(ia.Token), "B's API token": []byte(ib.Token)}
	secrets["link secret"] = linkSecret(t, code2.Code)
	for _, d := range []*daemon{a, b} {
		var kf map[string][]byte
		raw, err := os.ReadFile(filepath.Join(d.home, "identity.json"))
		if err == nil {
			err = json.Unmarshal(raw, &kf)
		}
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range kf {
			if strings.HasSuffix(k, "_seed") {
				secrets[d.name+" "+k] = v
			}
		}
	}
	if strings.Contains(logs, code2.Code) || strings.Contains(logs, strings.TrimPrefix(code2.Code, "parley-link-")) {
		t.Errorf("the link code is in a log")
	}
	for what, s := range secrets {
		if len(s) < 16 {
			t.Fatalf("%s: %d bytes", what, len(s))
		}
		for _, enc := range []string{string(s), hex.EncodeToString(s), base64.StdEncoding.EncodeToString(s), base64.RawURLEncoding.EncodeToString(s),
			strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(s)), base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(s)} {
			if strings.Contains(logs, enc) {
				t.Errorf("%s appears in the logs (as %q)", what, enc)
			}
		}
	}
	if !strings.Contains(a.log.String(), `"level":"DEBUG"`) {
		t.Errorf("A's log is not at debug level")
	}
}

// linkSecret decodes the secret of a link code (its canonical CBOR, in
// base32 after the prefix).
func linkSecret(t *testing.T, code string) []byte {
	t.Helper()
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(strings.TrimPrefix(code, "parley-link-")))
	if err != nil {
		t.Fatalf("link code: %v", err)
	}
	var w struct {
		Secret []byte `cbor:"secret"`
	}
	if err := cbor.Unmarshal(raw, &w); err != nil || len(w.Secret) == 0 {
		t.Fatalf("link code: %v", err)
	}
	return w.Secret
}
