package importers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"
)

// decodeJSON unmarshals a whole JSON file, naming the line of a syntax or
// type error.
func decodeJSON(name string, b []byte, v any) error {
	err := json.Unmarshal(b, v)
	if err == nil {
		return nil
	}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return malformed("%s line %d: %v", name, lineOf(b, se.Offset), se)
	case errors.As(err, &te):
		return malformed("%s line %d: field %s: %s where %s was expected", name, lineOf(b, te.Offset), te.Field, te.Value, te.Type)
	}
	return malformed("%s: %v", name, err)
}

// readMainJSON finds the export's main JSON file (findMain) and decodes
// it into v, returning its name.
func readMainJSON(fsys fs.FS, main, what string, v any, patterns ...string) (string, error) {
	name, err := findMain(fsys, main, what, patterns...)
	if err != nil {
		return "", err
	}
	b, err := readFile(fsys, name)
	if err != nil {
		return "", err
	}
	return name, decodeJSON(name, b, v)
}

// lineOf is the 1-based line of byte offset off.
func lineOf(b []byte, off int64) int {
	off = min(max(off, 0), int64(len(b)))
	return 1 + bytes.Count(b[:off], []byte("\n"))
}

// flexString reads a JSON string or number as a string (IDs are either,
// depending on the exporter's version).
type flexString string

func (s *flexString) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		*s = ""
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = flexString(v)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("want a string or a number, got %s", truncate(string(b), 40))
	}
	*s = flexString(n.String())
	return nil
}

// unixString parses seconds since the epoch given as a string with an
// optional fraction ("1704056700", "1704056700.000100").
func unixString(s string) (time.Time, error) {
	sec, frac, _ := strings.Cut(s, ".")
	n, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || n < 0 || n > 1<<40 {
		return time.Time{}, fmt.Errorf("%q is not a Unix time", s)
	}
	var ns int64
	if frac != "" {
		if len(frac) > 9 {
			frac = frac[:9]
		}
		f, err := strconv.ParseUint(frac, 10, 32)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not a Unix time", s)
		}
		ns = int64(f)
		for i := len(frac); i < 9; i++ {
			ns *= 10
		}
	}
	return time.Unix(n, ns).UTC(), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
