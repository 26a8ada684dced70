package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated part of docs/cli.md")

const (
	refFile  = "../../docs/cli.md"
	refBegin = "<!-- commands: generated from cmd/parley/cli.go by 'go test ./cmd/parley -run TestCLIReference -update' -->\n"
	refEnd   = "<!-- end of commands -->\n"
)

// commandTable renders the command table as Markdown.
func commandTable() string {
	var b strings.Builder
	b.WriteString("| command | does |\n|---|---|\n")
	for _, c := range commands {
		syn := strings.TrimSpace("parley " + c.name + " " + c.args)
		fmt.Fprintf(&b, "| `%s` | %s |\n", strings.ReplaceAll(syn, "|", `\|`), strings.ReplaceAll(c.summary, "|", `\|`))
	}
	return b.String()
}

// The repository's CLI reference lists every command as the table has it.
func TestCLIReference(t *testing.T) {
	b, err := os.ReadFile(refFile)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i, j := strings.Index(doc, refBegin), strings.Index(doc, refEnd)
	if i < 0 || j < i {
		t.Fatalf("%s has no generated command section", refFile)
	}
	want := doc[:i+len(refBegin)] + commandTable() + doc[j:]
	if want == doc {
		return
	}
	if *update {
		if err := os.WriteFile(refFile, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s is out of date with the command table: run go test ./cmd/parley -run TestCLIReference -update", refFile)
}
