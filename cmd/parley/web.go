package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"time"

	"github.com/parley-p2p/parley/api"
)

// parley open [--browser]
//
// Prints a one-time URL that logs a browser into the web app the daemon
// serves (docs/web.md); --browser also hands it to the system's opener.
func runOpen(c *cli, args []string) error {
	fs := c.flags()
	browser := fs.Bool("browser", false, "open the URL in the default browser")
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	var r api.WebLoginResp
	human := func(w io.Writer) {
		fmt.Fprintf(w, "%s\n\nOpen it in a browser on this machine. It logs in once, until %s; run 'parley open' again for another browser.\n",
			r.URL, time.UnixMilli(r.Expires).Format("15:04:05"))
	}
	if !*browser {
		return call(c, api.EpWebLogin, api.Empty{}, &r, human)
	}
	// --browser needs the URL also under --json: decode, then print.
	asJSON := c.json
	c.json = false
	err := call(c, api.EpWebLogin, api.Empty{}, &r, func(io.Writer) {})
	c.json = asJSON
	if err != nil {
		return err
	}
	if asJSON {
		raw, _ := json.Marshal(r)
		if err := c.printRaw(raw); err != nil {
			return err
		}
	} else {
		human(c.stdout)
	}
	opener := "xdg-open"
	switch runtime.GOOS {
	case "darwin":
		opener = "open"
	case "windows":
		opener = "explorer"
	}
	if err := exec.Command(opener, r.URL).Start(); err != nil {
		return fmt.Errorf("cannot start %s: %v (open the URL above yourself)", opener, err)
	}
	return nil
}
