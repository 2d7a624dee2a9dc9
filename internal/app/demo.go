package app

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/kinlink/kinlink/internal/identity"
)

// The demo is "serve" plus demo data. Each capability adds its records (agency,
// facility, residents, staff) to seedDemo as it lands, idempotently, and its logins
// to the guide below.

// The demo family account; its password passes the same policy as any other.
const (
	demoFamilyEmail    = "maria@example.org"
	demoFamilyPassword = "kinlink demo family 2026"
)

// seedDemo adds the demo records that are missing; running it again changes nothing.
func seedDemo(ctx context.Context, s *services) error {
	_, err := s.id.EnsureAccount(ctx, identity.SignupRequest{
		Email: demoFamilyEmail, Password: demoFamilyPassword, FullName: "María López",
		SecurityQuestion: "first_pet", SecurityAnswer: "Canela", Locale: "es",
	})
	if err != nil {
		return fmt.Errorf("demo data: %w", err)
	}
	return nil
}

// printDemoGuide tells the person who ran "kinlink demo" how to try it.
func printDemoGuide(s *services, out io.Writer) {
	fmt.Fprintf(out, "\nKinlink demo\n")
	fmt.Fprintf(out, "  Open %s in your browser.\n", s.cfg.BaseURL)
	fmt.Fprintf(out, "  Family login: %s / %s (security answer: Canela)\n", demoFamilyEmail, demoFamilyPassword)
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
