// Package app is the kinlink program: it reads the command line, builds the
// configuration, opens the database and wires the services, the HTTP server and the
// background jobs together. main calls Run and nothing else, so tests can start the
// real program in-process.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/kinlink/kinlink/internal/config"
)

// Version is the release, set at build time with -ldflags "-X ...app.Version=v1.2.3".
var Version = ""

// UsageError is a command-line mistake; main exits with status 2 for it.
type UsageError struct{ msg string }

func (e UsageError) Error() string { return e.msg }

func usageErr(format string, args ...any) error { return UsageError{fmt.Sprintf(format, args...)} }

// IsUsage reports whether err is a command-line mistake.
func IsUsage(err error) bool {
	var u UsageError
	return errors.As(err, &u)
}

const usage = `Kinlink connects families with people in prison and jail.

Usage: kinlink <command> [settings]

Commands:
  serve           run the server: web site, mobile API, kiosks, staff portal, background jobs
  demo            the same, with demo data and the logins to try it
  migrate         bring the database schema up to date and exit
  jobs            list background jobs: kinlink jobs [--state failed] [--limit 50]
  jobs retry      put a failed job back in the queue: kinlink jobs retry ID
  mail-test       send a test email: kinlink mail-test --to you@example.org
  admin           set up agencies, facilities and first staff (kinlink admin --help):
                    kinlink admin create-agency --code FLDOC --name "Florida Department of Corrections" --state FL
                    kinlink admin create-facility --agency FLDOC --code FSP --name "Florida State Prison" --type prison --timezone America/New_York --population 1400
                    kinlink admin create-staff --agency FLDOC --email ana@example.org --name "Ana Ruiz" --role agency_admin
  roster import   import an agency's full roster (CSV): kinlink roster import --agency FLDOC roster.csv [--apply]
  audit verify    check that the audit log's chain of hashes is intact
  ledger verify   check that every money movement balances and every balance adds up
  ledger reconcile  match a day's card money with the payment processor's records:
                    kinlink ledger reconcile [--day YYYY-MM-DD] (default yesterday, UTC)
  version         print the version

Run "kinlink <command> --help" for a command's own flags; "kinlink serve --help" lists
the server's settings (flags and KINLINK_* variables), which every command reads.
`

// Run runs the kinlink command line. It returns errors instead of exiting so that
// main can print them as one line.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageErr("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(ctx, "serve", rest, getenv, stdout, stderr, false)
	case "demo":
		return serve(ctx, "demo", rest, getenv, stdout, stderr, true)
	case "migrate":
		return migrate(ctx, rest, getenv, stdout, stderr)
	case "jobs":
		return jobsCommand(ctx, rest, getenv, stdout, stderr)
	case "mail-test":
		return mailTest(ctx, rest, getenv, stdout, stderr)
	case "admin":
		return adminCommand(ctx, rest, getenv, stdout, stderr)
	case "audit":
		return auditCommand(ctx, rest, getenv, stdout)
	case "roster":
		return rosterCommand(ctx, rest, getenv, stdout, stderr)
	case "ledger":
		return ledgerCommand(ctx, rest, getenv, stdout)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, versionString())
		return nil
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return usageErr("unknown command %q", cmd)
	}
}

func versionString() string {
	v := Version
	if v == "" {
		v = "dev"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	return fmt.Sprintf("kinlink %s (%s, %s/%s)", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// loadConfig reads the settings of a command; --help prints them and stops quietly.
func loadConfig(command string, args []string, getenv func(string) string, stdout io.Writer) (config.Config, []string, error) {
	cfg, rest, err := config.Load(command, args, getenv, stdout)
	if errors.Is(err, config.ErrHelp) {
		return cfg, nil, err
	}
	if err != nil {
		return cfg, nil, usageErr("%v", err)
	}
	return cfg, rest, nil
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// checkDataDir makes sure the data folder exists and can be written, so that a
// missing or read-only folder stops the start with a clear line, not a later failure.
func checkDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("data folder %s (KINLINK_DATA_DIR) cannot be created: %v", dir, pathErr(err))
	}
	probe, err := os.CreateTemp(dir, ".kinlink-write-check-*")
	if err != nil {
		return fmt.Errorf("data folder %s (KINLINK_DATA_DIR) is not writable: %v", dir, pathErr(err))
	}
	probe.Close()
	os.Remove(probe.Name())
	return nil
}

func pathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// outboxDir is where mail goes when no SMTP server is configured.
func outboxDir(cfg config.Config) string { return filepath.Join(cfg.DataDir, "outbox") }

// OneLine flattens an error for the single line main prints.
func OneLine(err error) string { return oneLine(err.Error()) }

// oneLine collapses every run of white space, line breaks included, to one space.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
