package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/kinlink/kinlink/internal/audit"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/identity"
	"github.com/kinlink/kinlink/internal/ledger"
)

// adminCommand is "kinlink admin <action>": the operator's set-up of agencies,
// facilities and their first staff. It takes the same database setting as serve and
// works while the server runs.
func adminCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && wantsHelp(args[:1]) {
		printHelp(stdout, "admin")
		return nil
	}
	if len(args) == 0 {
		return usageErr("kinlink admin needs an action: create-agency, create-facility or create-staff (kinlink admin --help)")
	}
	action, rest := args[0], args[1:]
	own := map[string][]string{
		"create-agency":   {"code", "name", "state"},
		"create-facility": {"agency", "code", "name", "type", "timezone", "population", "address"},
		"create-staff":    {"agency", "email", "name", "role", "facility", "lang"},
	}
	names, ok := own[action]
	if !ok {
		return usageErr("unknown admin action %q; accepted: create-agency, create-facility, create-staff", action)
	}
	if wantsHelp(rest) {
		printHelp(stdout, "admin "+action)
		return nil
	}
	isOwn := map[string]bool{}
	for _, n := range names {
		isOwn[n] = true
	}
	mine, settings := splitCommandFlags(rest, isOwn)
	fs := flag.NewFlagSet("kinlink admin "+action, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	v := map[string]*string{}
	for _, n := range names {
		v[n] = fs.String(n, "", n)
	}
	if err := fs.Parse(mine); err != nil {
		return usageErr("%v", err)
	}
	cfg, _, err := loadConfig("admin "+action, settings, getenv, stdout)
	if err != nil {
		return err
	}
	s, err := open(ctx, cfg, newLogger(cfg, stderr))
	if err != nil {
		return err
	}
	defer s.db.Close()
	if err := s.openIdentity(ctx); err != nil {
		return err
	}
	fac := s.fac

	switch action {
	case "create-agency":
		a, err := fac.CreateAgency(ctx, facility.Operator, facility.AgencyInput{Code: *v["code"], Name: *v["name"], State: *v["state"]})
		if err != nil {
			return explain(err, "agency")
		}
		fmt.Fprintf(stdout, "created agency %s (%s, %s)\n", a.Code, a.Name, a.State)
	case "create-facility":
		a, err := fac.AgencyByCode(ctx, *v["agency"])
		if err != nil {
			return fmt.Errorf("no agency with code %q (--agency)", *v["agency"])
		}
		var population int
		if _, err := fmt.Sscan(*v["population"], &population); err != nil {
			return usageErr("--population must be a whole number, the average daily population")
		}
		f, err := fac.CreateFacility(ctx, facility.Operator, a.ID, facility.FacilityInput{Code: *v["code"], Name: *v["name"], Kind: *v["type"],
			TimeZone: *v["timezone"], Address: *v["address"], Population: population})
		if err != nil {
			return explain(err, "facility")
		}
		fmt.Fprintf(stdout, "created facility %s (%s, a %s in %s) in %s\n", f.Code, f.Name, f.Kind, f.TimeZone, a.Code)
	case "create-staff":
		a, err := fac.AgencyByCode(ctx, *v["agency"])
		if err != nil {
			return fmt.Errorf("no agency with code %q (--agency)", *v["agency"])
		}
		in := facility.StaffInput{Email: *v["email"], FullName: *v["name"], Role: *v["role"], Locale: *v["lang"]}
		if *v["facility"] != "" {
			f, err := fac.FacilityByCode(ctx, a.ID, *v["facility"])
			if err != nil {
				return fmt.Errorf("no facility with code %q in %s (--facility)", *v["facility"], a.Code)
			}
			in.FacilityID = f.ID
		}
		_, link, err := fac.CreateStaff(ctx, facility.Operator, a.ID, in)
		if err != nil {
			return explain(err, "staff")
		}
		s.runner.RunOne(ctx) // send the enrolment mail now if it can be
		fmt.Fprintf(stdout, "created %s %s for %s; an enrolment link was mailed to them.\n", in.Role, identity.NormalizeEmail(in.Email), a.Code)
		fmt.Fprintf(stdout, "Enrolment link (one use, 7 days; give it only to them):\n%s\n", link)
	}
	return nil
}

// explain turns a validation error into one line that names the flags to fix.
func explain(err error, what string) error {
	var v *facility.ValidationError
	if !errors.As(err, &v) {
		return err
	}
	var parts []string
	for field, code := range v.Fields {
		flagName := field
		if field == "full_name" {
			flagName = "name"
		}
		parts = append(parts, fmt.Sprintf("--%s is %s", flagName, strings.ReplaceAll(code, "_", " ")))
	}
	sort.Strings(parts)
	return usageErr("cannot create the %s: %s (%s)", what, strings.Join(parts, "; "), hints[what])
}

var hints = map[string]string{
	"agency":   "code: 2-16 capital letters or digits; state: a two-letter postal code",
	"facility": "type: prison or jail; timezone: such as America/New_York; code: 2-16 capital letters or digits",
	"staff":    "role: agency_admin, investigator, facility_admin, mail_reviewer, visitation_officer or finance; facility roles need --facility (finance: with it for one facility, without it for the agency)",
}

// auditCommand is "kinlink audit verify".
func auditCommand(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) > 0 && wantsHelp(args[:1]) {
		printHelp(stdout, "audit")
		return nil
	}
	if len(args) == 0 || args[0] != "verify" {
		return usageErr("kinlink audit takes one action: verify")
	}
	if wantsHelp(args[1:]) {
		printHelp(stdout, "audit verify")
		return nil
	}
	cfg, _, err := loadConfig("audit verify", args[1:], getenv, stdout)
	if err != nil {
		return err
	}
	db, err := openCurrent(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	n, err := audit.Verify(ctx, db)
	if err != nil {
		return fmt.Errorf("%v (%d rows before it are intact)", err, n)
	}
	fmt.Fprintf(stdout, "audit log intact: %d rows, every one chained to the one before\n", n)
	return nil
}

// rosterCommand is "kinlink roster import --agency CODE FILE [--apply]": a dry run
// that prints what the roster would change, and with --apply makes the changes.
func rosterCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && wantsHelp(args[:1]) {
		printHelp(stdout, "roster")
		return nil
	}
	if len(args) == 0 || args[0] != "import" {
		return usageErr("kinlink roster takes one action: import --agency CODE FILE [--apply]")
	}
	if wantsHelp(args[1:]) {
		printHelp(stdout, "roster import")
		return nil
	}
	mine, settings := splitCommandFlags(args[1:], map[string]bool{"agency": true})
	applyFlag, massFlag := false, false
	var rest []string
	for _, a := range settings {
		switch a {
		case "--apply", "-apply":
			applyFlag = true
		case "--allow-mass-release", "-allow-mass-release":
			massFlag = true
		default:
			rest = append(rest, a)
		}
	}
	fs := flag.NewFlagSet("kinlink roster import", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	agencyCode := fs.String("agency", "", "agency code")
	if err := fs.Parse(mine); err != nil {
		return usageErr("%v", err)
	}
	cfg, files, err := loadConfig("roster import", rest, getenv, stdout)
	if err != nil {
		return err
	}
	if *agencyCode == "" || len(files) != 1 {
		return usageErr("kinlink roster import needs --agency CODE and one roster file")
	}
	f, err := os.Open(files[0])
	if err != nil {
		return fmt.Errorf("cannot read the roster: %v", pathErr(err))
	}
	defer f.Close()
	s, err := open(ctx, cfg, newLogger(cfg, stderr))
	if err != nil {
		return err
	}
	defer s.db.Close()
	if err := s.openIdentity(ctx); err != nil {
		return err
	}
	a, err := s.fac.AgencyByCode(ctx, *agencyCode)
	if err != nil {
		return fmt.Errorf("no agency with code %q (--agency)", *agencyCode)
	}
	sum, err := s.fac.ImportRoster(ctx, facility.Operator, a.ID, f, facility.RosterOptions{Apply: applyFlag, AllowMassRelease: massFlag})
	var mass *facility.ErrMassRelease
	if errors.As(err, &mass) {
		return fmt.Errorf("nothing changed: %v (run without --apply to see the dry run; add --allow-mass-release if the file is right)", mass)
	}
	if err != nil {
		return err
	}
	printRosterSummary(stdout, sum)
	if !applyFlag {
		fmt.Fprintln(stdout, "\nThis was a dry run: nothing changed. Run again with --apply to make these changes.")
	} else {
		fmt.Fprintln(stdout, "\nApplied: every change above was made in one transaction.")
	}
	return nil
}

func printRosterSummary(w io.Writer, sum facility.RosterSummary) {
	fmt.Fprintf(w, "%d rows: %d new, %d moved, %d released, %d changed, %d unchanged, %d rejected\n",
		sum.Rows, sum.New, sum.Moved, sum.Released, sum.Changed, sum.Unchanged, len(sum.Rejected))
	if sum.ReleasesSkipped {
		fmt.Fprintln(w, "A rejected row has no readable resident_id, so nobody is released for being missing from this file.")
	}
	for _, r := range sum.Rejected {
		fmt.Fprintf(w, "  rejected line %d %s: %s\n", r.Line, r.Resident, strings.ReplaceAll(r.Reason, "_", " "))
	}
	for i, c := range sum.Examples {
		if i == 20 {
			fmt.Fprintf(w, "  … and more\n")
			break
		}
		where := c.To
		if c.Kind == "moved" {
			where = c.From + " -> " + c.To
		} else if c.Kind == "released" {
			where = c.From
		}
		fmt.Fprintf(w, "  %-8s %s %s (%s)\n", c.Kind, c.Resident, c.Name, where)
	}
}

// ledgerCommand is "kinlink ledger verify": every transaction balances and every
// balance is the sum of its entries; and "kinlink ledger reconcile": the ledger's
// card money of a day matches the processor's records.
func ledgerCommand(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) > 0 && wantsHelp(args[:1]) {
		printHelp(stdout, "ledger")
		return nil
	}
	if len(args) > 0 && args[0] == "reconcile" {
		if wantsHelp(args[1:]) {
			printHelp(stdout, "ledger reconcile")
			return nil
		}
		return ledgerReconcile(ctx, args[1:], getenv, stdout)
	}
	if len(args) == 0 || args[0] != "verify" {
		return usageErr("kinlink ledger takes one action: verify, or reconcile [--day YYYY-MM-DD]")
	}
	if wantsHelp(args[1:]) {
		printHelp(stdout, "ledger verify")
		return nil
	}
	cfg, _, err := loadConfig("ledger verify", args[1:], getenv, stdout)
	if err != nil {
		return err
	}
	db, err := openCurrent(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	r, err := ledger.New(db).Verify(ctx)
	if err != nil {
		return err
	}
	for _, p := range r.Problems {
		fmt.Fprintln(stdout, "  "+p)
	}
	if len(r.Problems) > 0 {
		if len(r.Problems) == 1 {
			return errors.New("the ledger does not verify: 1 problem (listed above)")
		}
		return fmt.Errorf("the ledger does not verify: %d problems (listed above)", len(r.Problems))
	}
	fmt.Fprintf(stdout, "ledger verified: %d transactions balance; %d stored balances (wallets, residents) equal the sum of their entries; %d system accounts (processor, platform) keep no stored balance, only their entries\n",
		r.Transactions, r.Stored, r.System)
	return nil
}

// ledgerReconcile is "kinlink ledger reconcile [--day YYYY-MM-DD]": the ledger's
// card movements of a UTC day (yesterday by default) matched one by one with the
// payment processor's own records. Differences are listed and fail the command.
func ledgerReconcile(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	mine, settings := splitCommandFlags(args, map[string]bool{"day": true})
	fs := flag.NewFlagSet("kinlink ledger reconcile", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dayFlag := fs.String("day", "", "the UTC day, YYYY-MM-DD")
	if err := fs.Parse(mine); err != nil {
		return usageErr("%v", err)
	}
	day := time.Now().UTC().AddDate(0, 0, -1)
	if *dayFlag != "" {
		d, err := time.Parse(time.DateOnly, *dayFlag)
		if err != nil {
			return usageErr("--day is %q; accepted: a date such as 2026-03-10 (a UTC day)", *dayFlag)
		}
		day = d
	}
	cfg, rest, err := loadConfig("ledger reconcile", settings, getenv, stdout)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageErr("kinlink ledger reconcile takes no arguments, got %q", rest[0])
	}
	processor, err := openProcessor(cfg)
	if err != nil {
		return err
	}
	st, ok := processor.(ledger.Statement)
	if !ok {
		return fmt.Errorf("the payment processor is the %s, which keeps no records of its own: there is nothing to reconcile the ledger with (no real money moves; kinlink ledger verify checks the ledger by itself)", processor.Name())
	}
	db, err := openCurrent(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	from, to := ledger.Day(day)
	r, err := ledger.New(db).Reconcile(ctx, st, from, to)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s, %s (UTC), the ledger against %s:\n", from.Format(time.DateOnly), from.Weekday(), processor.Name())
	printCardTotals(stdout, "ledger", r.Ledger)
	printCardTotals(stdout, processor.Name(), r.Processor)
	fmt.Fprintf(stdout, "  %d movements matched\n", r.Matched)
	for _, line := range r.Lines() {
		fmt.Fprintln(stdout, "  "+line)
	}
	if n := r.Differences(); n > 0 {
		return fmt.Errorf("the ledger and %s do not reconcile for %s: %d differences (listed above)", processor.Name(), from.Format(time.DateOnly), n)
	}
	fmt.Fprintf(stdout, "reconciled: every movement of card money on %s is in both the ledger and %s's records, with the same amount\n", from.Format(time.DateOnly), processor.Name())
	return nil
}

func printCardTotals(w io.Writer, side string, t ledger.CardTotals) {
	fmt.Fprintf(w, "  %-8s %3d movements: charges %s, refunds %s, chargebacks %s, reinstated %s; net %s\n", side, t.Movements,
		ledger.Dollars(t.Charges), ledger.Dollars(t.Refunds), ledger.Dollars(t.Chargebacks), ledger.Dollars(t.Reinstated), ledger.Dollars(t.Net()))
}
