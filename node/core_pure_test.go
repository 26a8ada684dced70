package node

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"testing"
)

// coreFiles are the engine core (driver.go): a step function over the
// engine's state that hands its effects to the driver in a Ready.
var coreFiles = []string{
	"engine.go", "keys.go", "content.go", "governance.go", "membership.go",
	"devices.go", "invites.go", "host.go", "ready.go", "prefs.go",
}

// driverOnly are the driver's functions (driver.go), which the core never
// calls: it proposes, and the driver performs.
var driverOnly = map[string]bool{
	"perform": true, "commitProposal": true, "writeAhead": true, "writePlain": true, "purge": true, "purgeOne": true, "save": true,
	"writeBook": true,
}

// TestEngineCoreIsPure checks that the engine core starts no goroutine,
// sets no timer, reads no wall clock, sleeps not, draws no global
// randomness, calls no networking callback (Effects) itself and neither
// commits to the store nor purges from it, writes no node-local value
// (epoch secrets, the invite book, plaintext), saves no preferences and calls none of the
// driver's functions: the driver performs what the core proposes and
// lists in its Ready.
func TestEngineCoreIsPure(t *testing.T) {
	banned := map[string]bool{
		"time.Now": true, "time.Since": true, "time.Until": true, "time.AfterFunc": true, "time.Sleep": true,
		"time.NewTimer": true, "time.NewTicker": true, "time.After": true, "time.Tick": true,
	}
	fset := token.NewFileSet()
	for _, name := range coreFiles {
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == "crypto/rand" || p == "math/rand" {
				t.Errorf("%s imports %s (randomness comes in through KeyOptions.Rand or a seeded source)", name, p)
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.GoStmt:
				t.Errorf("%s: go statement", fset.Position(n.Pos()))
			case *ast.SelectorExpr:
				if x, ok := n.X.(*ast.Ident); ok && banned[x.Name+"."+n.Sel.Name] {
					t.Errorf("%s: %s.%s", fset.Position(n.Pos()), x.Name, n.Sel.Name)
				}
				if x, ok := n.X.(*ast.SelectorExpr); ok && x.Sel.Name == "fx" {
					t.Errorf("%s: calls Effects directly (put it in the Ready)", fset.Position(n.Pos()))
				}
				if x, ok := n.X.(*ast.SelectorExpr); ok && x.Sel.Name == "store" && (n.Sel.Name == "Commit" || n.Sel.Name == "PurgeBody") {
					t.Errorf("%s: writes to the store (propose the batch, list the purge: the driver performs them)", fset.Position(n.Pos()))
				}
				if n.Sel.Name == "PutLocal" || n.Sel.Name == "DeleteLocal" {
					t.Errorf("%s: writes a node-local value (Ready.Keep, Ready.Book, Ready.Plain: the driver writes them)", fset.Position(n.Pos()))
				}
				if driverOnly[n.Sel.Name] {
					t.Errorf("%s: calls the driver's %s (put it in the Ready)", fset.Position(n.Pos()), n.Sel.Name)
				}
			case *ast.Ident:
				if n.Name == "writeJSON" {
					t.Errorf("%s: writes a file (savePrefs: the driver saves)", fset.Position(n.Pos()))
				}
			}
			return true
		})
	}
}
