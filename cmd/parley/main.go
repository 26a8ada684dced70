// Command parley runs a Parley node (parley daemon) and drives a running one
// through its local API (every other command). The command line contract is
// docs/cli.md: names, flags, JSON keys, exit codes and the error line format.
//
// This file only hands the process over to run, which is what the tests call.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
