package app

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kinlink/kinlink/internal/config"
	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/jobs"
	"github.com/kinlink/kinlink/internal/mail"
)

// migrate brings the schema up to date; open does the work and logs each step.
func migrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if wantsHelp(args) {
		printHelp(stdout, "migrate")
		return nil
	}
	cfg, _, err := loadConfig("migrate", args, getenv, stdout)
	if err != nil {
		return err
	}
	db, err := database.Open(ctx, cfg.Database)
	if err != nil {
		return err
	}
	defer db.Close()
	applied, err := db.Migrate(ctx)
	if err != nil {
		return err
	}
	for _, m := range applied {
		fmt.Fprintf(stdout, "applied %04d_%s\n", m.Version, m.Name)
	}
	cur, _, err := db.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "database schema is at version %d (%s)\n", cur, db.Dialect)
	return nil
}

// openCurrent opens the database for an operator command that reads it as it is:
// it must already be at the schema this binary knows.
func openCurrent(ctx context.Context, cfg config.Config) (*database.DB, error) {
	db, err := database.Open(ctx, cfg.Database)
	if err != nil {
		return nil, err
	}
	cur, latest, err := db.SchemaVersion(ctx)
	if err != nil {
		err = fmt.Errorf("%w; if this is a new database, run kinlink migrate first", err)
	} else if cur != latest {
		err = fmt.Errorf("the database schema is at version %d and this kinlink knows version %d: run kinlink migrate (or kinlink serve) first", cur, latest)
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// splitCommandFlags separates a command's own flags from the shared settings, so
// that "kinlink jobs --state failed --database ..." reads both.
func splitCommandFlags(args []string, own map[string]bool) (mine, settings []string) {
	for i := 0; i < len(args); i++ {
		name := strings.TrimLeft(args[i], "-")
		name, _, hasValue := strings.Cut(name, "=")
		if strings.HasPrefix(args[i], "-") && own[name] {
			mine = append(mine, args[i])
			if !hasValue && i+1 < len(args) {
				mine = append(mine, args[i+1])
				i++
			}
			continue
		}
		settings = append(settings, args[i])
	}
	return mine, settings
}

func jobsCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "retry" {
		if wantsHelp(args[1:]) {
			printHelp(stdout, "jobs retry")
			return nil
		}
		return jobsRetry(ctx, args[1:], getenv, stdout)
	}
	if wantsHelp(args) {
		printHelp(stdout, "jobs")
		return nil
	}
	mine, settings := splitCommandFlags(args, map[string]bool{"state": true, "limit": true})
	fs := flag.NewFlagSet("kinlink jobs", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	state := fs.String("state", "", "only jobs in this state: available, running, succeeded, failed")
	limit := fs.Int("limit", 50, "how many jobs to list, newest first")
	if err := fs.Parse(mine); err != nil {
		return usageErr("%v", err)
	}
	switch jobs.State(*state) {
	case "", jobs.Available, jobs.Running, jobs.Succeeded, jobs.Failed:
	default:
		return usageErr("--state is %q; accepted: available, running, succeeded, failed", *state)
	}
	if *limit < 1 || *limit > 10000 {
		return usageErr("--limit is %d; accepted: 1 to 10000", *limit)
	}
	cfg, _, err := loadConfig("jobs", settings, getenv, stdout)
	if errors.Is(err, config.ErrHelp) {
		fmt.Fprintln(stdout, "\nkinlink jobs also takes --state STATE and --limit N.")
		return nil
	}
	if err != nil {
		return err
	}
	db, err := openCurrent(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	counts, err := jobs.Counts(ctx, db)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "jobs: %d available, %d running, %d succeeded, %d failed\n\n",
		counts[jobs.Available], counts[jobs.Running], counts[jobs.Succeeded], counts[jobs.Failed])
	list, err := jobs.List(ctx, db, jobs.State(*state), *limit)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tSTATE\tATTEMPTS\tCREATED\tNEXT RUN / FINISHED\tLAST ERROR")
	for _, j := range list {
		when := j.RunAfter.UTC().Format(time.RFC3339)
		if j.FinishedAt != nil {
			when = j.FinishedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d/%d\t%s\t%s\t%s\n", j.ID, j.Kind, j.State, j.Attempts, j.MaxAttempts,
			j.CreatedAt.UTC().Format(time.RFC3339), when, oneLine(j.LastError))
	}
	return tw.Flush()
}

func jobsRetry(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, rest, err := loadConfig("jobs retry", args, getenv, stdout)
	if errors.Is(err, config.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usageErr("kinlink jobs retry takes one job ID")
	}
	id, err := strconv.ParseInt(rest[0], 10, 64)
	if err != nil {
		return usageErr("job ID %q is not a number", rest[0])
	}
	db, err := openCurrent(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := jobs.Retry(ctx, db, id); err != nil {
		if errors.Is(err, jobs.ErrNotFailed) {
			return fmt.Errorf("job %d is not a failed job; only failed jobs can be retried", id)
		}
		if errors.Is(err, jobs.ErrSensitive) {
			return fmt.Errorf("job %d carried a one-time code that has been cleared; it cannot be sent again (the person can ask for a new code)", id)
		}
		return err
	}
	fmt.Fprintf(stdout, "job %d is queued again\n", id)
	return nil
}

// mailTest queues a test message, the quickest way for an operator to check SMTP
// settings. A running server sends it; without one, "kinlink serve" sends it later.
func mailTest(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if wantsHelp(args) {
		printHelp(stdout, "mail-test")
		return nil
	}
	mine, settings := splitCommandFlags(args, map[string]bool{"to": true, "lang": true})
	fs := flag.NewFlagSet("kinlink mail-test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	to := fs.String("to", "", "recipient address")
	lang := fs.String("lang", "en", "language: en or es")
	if err := fs.Parse(mine); err != nil {
		return usageErr("%v", err)
	}
	cfg, _, err := loadConfig("mail-test", settings, getenv, stdout)
	if err != nil {
		return err
	}
	if *to == "" || !strings.Contains(*to, "@") {
		return usageErr("kinlink mail-test needs --to with an email address")
	}
	s, err := open(ctx, cfg, newLogger(cfg, stderr))
	if err != nil {
		return err
	}
	defer s.db.Close()
	var id int64
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		id, err = mail.EnqueueID(ctx, s.db, tx, mail.Message{To: *to, Template: "test", Locale: *lang})
		return err
	})
	if err != nil {
		return err
	}
	// Send it now rather than wait for a server: the operator is watching. Older jobs
	// due before it run first.
	for {
		j, err := jobs.Get(ctx, s.db, id)
		if err != nil {
			return err
		}
		if j.State == jobs.Succeeded {
			break
		}
		if j.LastError != "" {
			return fmt.Errorf("the test mail was not sent: %s (it stays queued; see kinlink jobs)", oneLine(j.LastError))
		}
		if ran, err := s.runner.RunOne(ctx); err != nil || !ran {
			return fmt.Errorf("the test mail is queued but could not be run now: %v", err)
		}
	}
	if s.outbox != "" {
		fmt.Fprintf(stdout, "No SMTP server is set (KINLINK_SMTP_HOST), so the test mail was written to %s\n", s.outbox)
	} else {
		fmt.Fprintf(stdout, "test mail sent to %s through %s:%d\n", *to, cfg.SMTPHost, cfg.SMTPPort)
	}
	return nil
}
