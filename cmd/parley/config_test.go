package main

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/node"
)

// daemonFlags is a FlagSet shaped like the daemon's (every kind of flag).
func daemonFlags() (*flag.FlagSet, *multiFlag, *string, *bool, *string) {
	fs := flag.NewFlagSet("daemon", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String("home", "", "")
	fs.Bool("json", false, "")
	var listen multiFlag
	fs.Var(&listen, "listen", "")
	api := fs.String("api", "127.0.0.1:4080", "")
	noDHT := fs.Bool("no-dht", false, "")
	level := fs.String("log-level", "info", "")
	return fs, &listen, api, noDHT, level
}

// TestConfigFile: keys set the flags the command line left unset; flags
// given win; unknown keys and values of the wrong shape are errors that
// name the key and line.
func TestConfigFile(t *testing.T) {
	conf := "# a comment\napi: 127.0.0.1:5000\nlisten:\n  - /ip4/127.0.0.1/tcp/1\n  - /ip4/127.0.0.1/tcp/2\nno-dht: true\nlog-level: debug\n"
	fs, listen, api, noDHT, level := daemonFlags()
	if err := fs.Parse([]string{"--log-level", "warn", "--listen", "/ip4/127.0.0.1/tcp/9"}); err != nil {
		t.Fatal(err)
	}
	if err := applyConfigBytes(fs, "config.yaml", []byte(conf)); err != nil {
		t.Fatal(err)
	}
	if *api != "127.0.0.1:5000" || !*noDHT {
		t.Errorf("api %q no-dht %v: the file did not set them", *api, *noDHT)
	}
	if *level != "warn" || len(*listen) != 1 || (*listen)[0] != "/ip4/127.0.0.1/tcp/9" {
		t.Errorf("log-level %q listen %q: the command line must win", *level, *listen)
	}
	fs, listen, _, _, _ = daemonFlags()
	if err := applyConfigBytes(fs, "config.yaml", []byte(conf)); err != nil || len(*listen) != 2 {
		t.Errorf("a list sets a repeatable flag once per item: %q, %v", *listen, err)
	}
	for _, empty := range []string{"", "# nothing\n", "---\n"} {
		fs, _, _, _, _ := daemonFlags()
		if err := applyConfigBytes(fs, "config.yaml", []byte(empty)); err != nil {
			t.Errorf("%q: %v", empty, err)
		}
	}
	for _, tc := range []struct{ conf, want string }{
		{"apii: 127.0.0.1:1\n", `line 1: unknown key "apii" (the keys are the daemon's flags: api, listen, log-level, no-dht)`},
		{"api: x\nhome: /tmp\n", `line 2: unknown key "home"`},
		{"api: x\napi: y\n", `key "api" given twice`},
		{"no-dht: yes please\n", `key "no-dht": want true or false`},
		{"api: [a, b]\n", `key "api": takes one value, not a list`},
		{"listen: {a: b}\n", `key "listen": want a value, not a mapping`},
		{"api:\n", `key "api": no value`},
		{"- api\n", "want a mapping"},
		{"api: [\n", "config.yaml"},
	} {
		fs, _, _, _, _ := daemonFlags()
		err := applyConfigBytes(fs, "config.yaml", []byte(tc.conf))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.conf, err, tc.want)
		}
	}
}

// TestDaemonConfigErrors: through the command, a bad config file or log
// option is one "parley: ..." line (exit 1 or 2) and no daemon starts.
func TestDaemonConfigErrors(t *testing.T) {
	home := t.TempDir()
	os.WriteFile(filepath.Join(home, configFile), []byte("log-level: debug\nmetrix: 127.0.0.1:9\n"), 0o600)
	r := runCLI(t, "", "daemon", "--home", home, "--api", "127.0.0.1:0")
	r.failsWith(t, `unknown key "metrix"`)
	os.WriteFile(filepath.Join(home, configFile), []byte("log-format: xml\n"), 0o600)
	runCLI(t, "", "daemon", "--home", home).usageError(t, `bad --log-format "xml" (use text or json)`)
	os.Remove(filepath.Join(home, configFile))
	runCLI(t, "", "daemon", "--home", home, "--log-level", "loud").usageError(t, `bad --log-level "loud"`)
	runCLI(t, "", "daemon", "--home", home, "--metrics", "nowhere").failsWith(t, `bad --metrics address "nowhere"`)
	if _, err := os.Stat(filepath.Join(home, "store")); !os.IsNotExist(err) {
		t.Errorf("a refused start created the store (%v)", err)
	}
}

// TestNewLogger: both formats, and the level filters.
func TestNewLogger(t *testing.T) {
	var b bytes.Buffer
	l, err := newLogger(&b, "warn", "json")
	if err != nil {
		t.Fatal(err)
	}
	l.Info("hidden")
	l.Warn("shown", "k", 1)
	if got := b.String(); !strings.HasPrefix(got, "{") || strings.Contains(got, "hidden") || !strings.Contains(got, `"msg":"shown"`) {
		t.Errorf("json at warn: %q", got)
	}
	b.Reset()
	l, _ = newLogger(&b, "debug", "text")
	l.Debug("x")
	if !strings.Contains(b.String(), "level=DEBUG msg=x") {
		t.Errorf("text at debug: %q", b.String())
	}
}

// TestBannerMetrics: the banner names the metrics listener and warns when
// it is not on loopback; --json carries its URL.
func TestBannerMetrics(t *testing.T) {
	var out bytes.Buffer
	c := &cli{stdout: &out}
	b := node.Banner{PeerID: "P", API: "http://127.0.0.1:1", Metrics: "http://127.0.0.1:9/metrics"}
	c.printBanner("/h", b)
	if !strings.Contains(out.String(), "metrics  http://127.0.0.1:9/metrics\n") || strings.Contains(out.String(), "warning") {
		t.Errorf("loopback: %q", out.String())
	}
	out.Reset()
	b.Metrics, b.MetricsExposed = "http://0.0.0.0:9/metrics", true
	c.printBanner("/h", b)
	if !strings.Contains(out.String(), "warning: not a loopback address") {
		t.Errorf("exposed: %q", out.String())
	}
	out.Reset()
	c.json = true
	c.printBanner("/h", b)
	if !strings.Contains(out.String(), `"metrics": "http://0.0.0.0:9/metrics"`) && !strings.Contains(out.String(), `"metrics":"http://0.0.0.0:9/metrics"`) {
		t.Errorf("json: %q", out.String())
	}
}
