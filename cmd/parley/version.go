package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// versionInfo is what 'parley version' prints.
type versionInfo struct {
	Version  string `json:"version"`  // the module version, "devel" for a build from a work tree
	Commit   string `json:"commit"`   // the VCS revision, "unknown" when not stamped (-buildvcs=false)
	Modified bool   `json:"modified"` // built from a work tree with uncommitted changes
	Go       string `json:"go"`
}

// buildVersion reads the version stamped into the binary.
func buildVersion() versionInfo { return versionOf(debug.ReadBuildInfo()) }

// versionOf reads a binary's build information (ok false: none).
func versionOf(bi *debug.BuildInfo, ok bool) versionInfo {
	v := versionInfo{Version: "devel", Commit: "unknown", Go: runtime.Version()}
	if !ok {
		return v
	}
	if m := bi.Main.Version; m != "" && m != "(devel)" {
		v.Version = m
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// parley version (also: parley --version)
func runVersion(c *cli, args []string) error {
	if _, err := c.parse(c.flags(), args, 0, 0); err != nil {
		return err
	}
	v := buildVersion()
	if c.json {
		return c.printJSON(v)
	}
	commit := v.Commit
	if v.Modified {
		commit += ", modified"
	}
	_, err := fmt.Fprintf(c.stdout, "parley %s (commit %s, %s)\n", v.Version, commit, v.Go)
	return err
}
