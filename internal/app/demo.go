package app

import (
	"fmt"
	"io"
	"path/filepath"
)

// The demo is "serve" plus demo data. Each capability adds its records (agency,
// facility, residents, staff, a family account) to a seed step here as it lands,
// idempotently, and its logins to the guide below.

// printDemoGuide tells the person who ran "kinlink demo" how to try it.
func printDemoGuide(s *services, out io.Writer) {
	fmt.Fprintf(out, "\nKinlink demo\n")
	fmt.Fprintf(out, "  Open %s in your browser.\n", s.cfg.BaseURL)
	if s.outbox != "" {
		dir, err := filepath.Abs(s.outbox)
		if err != nil {
			dir = s.outbox
		}
		fmt.Fprintf(out, "  No mail is sent: every email is written as an .eml file to %s\n", dir)
	} else {
		fmt.Fprintf(out, "  Mail goes out through %s:%d.\n", s.cfg.SMTPHost, s.cfg.SMTPPort)
	}
	fmt.Fprintf(out, "  Stop with Ctrl+C. Data is kept in %s.\n\n", s.cfg.DataDir)
}
