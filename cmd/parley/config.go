package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// configFile is the daemon's configuration file in the home. Its keys are
// the daemon's flag names (without the dashes); a flag given on the command
// line wins over the file. YAML, because gopkg.in/yaml.v3 is already a
// dependency and the file is a flat map (docs/operators.md).
const configFile = "config.yaml"

// notInConfig are the daemon flags that make no sense in the home's own
// file: the home is where the file is found.
var notInConfig = []string{"home", "json"}

// applyConfig sets the flags of fs that the command line left unset from
// HOME/config.yaml, if it exists. An unknown key, a value of the wrong
// shape or a bad value is an error that names the key.
func applyConfig(fs *flag.FlagSet, home string) error {
	path := filepath.Join(home, configFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read config %s: %v", path, err)
	}
	return applyConfigBytes(fs, path, b)
}

func applyConfigBytes(fs *flag.FlagSet, path string, b []byte) error {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file
		}
		return fmt.Errorf("config %s: %v", path, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return fmt.Errorf("config %s: want one YAML mapping of flag names to values", path)
	}
	m := doc.Content[0]
	if m.Kind == yaml.ScalarNode && m.Tag == "!!null" {
		return nil
	}
	if m.Kind != yaml.MappingNode {
		return fmt.Errorf("config %s: want a mapping of flag names to values (such as 'api: 127.0.0.1:4080'), not a %s", path, kindName(m))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		key := k.Value
		f := fs.Lookup(key)
		if k.Kind != yaml.ScalarNode || f == nil || slices.Contains(notInConfig, key) {
			return fmt.Errorf("config %s line %d: unknown key %q (the keys are the daemon's flags: %s)", path, k.Line, key, strings.Join(configKeys(fs), ", "))
		}
		if seen[key] {
			return fmt.Errorf("config %s line %d: key %q given twice", path, k.Line, key)
		}
		seen[key] = true
		vals, err := configValues(f, v)
		if err != nil {
			return fmt.Errorf("config %s line %d: key %q: %v", path, v.Line, key, err)
		}
		if set[key] {
			continue // the command line wins
		}
		for _, s := range vals {
			if err := f.Value.Set(s); err != nil {
				return fmt.Errorf("config %s line %d: key %q: bad value %q: %v", path, v.Line, key, s, err)
			}
		}
	}
	return nil
}

// configValues are the strings to Set a flag with: one for a scalar, one
// per item for a list (repeatable flags only).
func configValues(f *flag.Flag, v *yaml.Node) ([]string, error) {
	_, repeatable := f.Value.(*multiFlag)
	switch v.Kind {
	case yaml.ScalarNode:
		if v.Tag == "!!null" {
			return nil, errors.New("no value")
		}
		if isBoolFlag(f) && v.Tag != "!!bool" {
			return nil, fmt.Errorf("want true or false, not %q", v.Value)
		}
		return []string{v.Value}, nil
	case yaml.SequenceNode:
		if !repeatable {
			return nil, errors.New("takes one value, not a list")
		}
		var out []string
		for _, it := range v.Content {
			if it.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("list items must be plain values, not a %s", kindName(it))
			}
			out = append(out, it.Value)
		}
		return out, nil
	}
	return nil, fmt.Errorf("want a value, not a %s", kindName(v))
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.AliasNode:
		return "alias"
	}
	return "value " + strconv.Quote(n.Value)
}

// configKeys lists the keys a config file may hold.
func configKeys(fs *flag.FlagSet) []string {
	var out []string
	fs.VisitAll(func(f *flag.Flag) {
		if !slices.Contains(notInConfig, f.Name) {
			out = append(out, f.Name)
		}
	})
	return out
}

// newLogger makes the daemon's logger on w.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("bad --log-level %q (use debug, info, warn or error)", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("bad --log-format %q (use text or json)", format)
}
