package app

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// commandHelp is what "kinlink <command> --help" says of an operator command: how it
// is written, what it does, and its own flags. The server settings (the database,
// mail…) are the same for every command and are listed once, by serve --help.
type commandHelp struct {
	usage string
	what  string
	flags [][2]string // flag and its meaning
}

// commandHelps are the operator commands' helps, by name.
func commandHelps() map[string]commandHelp {
	return map[string]commandHelp{
		"migrate": {usage: "kinlink migrate", what: "Bring the database schema up to date and exit (serve does it at start too)."},
		"jobs": {usage: "kinlink jobs [--state failed] [--limit 50]", what: "List background jobs, newest first, with their state and last error.",
			flags: [][2]string{{"--state STATE", "only jobs in this state: available, running, succeeded or failed"}, {"--limit N", "how many to list (default 50)"}}},
		"jobs retry": {usage: "kinlink jobs retry ID", what: "Put a failed job back in the queue."},
		"mail-test": {usage: "kinlink mail-test --to ADDRESS [--lang es]", what: "Send a test email, to check the mail settings.",
			flags: [][2]string{{"--to ADDRESS", "where to send it"}, {"--lang en|es", "its language (default en)"}}},
		"admin create-agency": {usage: `kinlink admin create-agency --code FLDOC --name "Florida Department of Corrections" --state FL`,
			what:  "Create an agency: a state department of corrections or a sheriff's office.",
			flags: [][2]string{{"--code CODE", "2-16 capital letters or digits"}, {"--name NAME", "its name"}, {"--state XX", "its state, two letters"}}},
		"admin create-facility": {usage: `kinlink admin create-facility --agency FLDOC --code FSP --name "Florida State Prison" --type prison --timezone America/New_York --population 1400`,
			what: "Add a facility to an agency.",
			flags: [][2]string{{"--agency CODE", "the agency"}, {"--code CODE", "2-16 capital letters or digits"}, {"--name NAME", "its name"},
				{"--type prison|jail", "what it is"}, {"--timezone ZONE", "its time zone, such as America/New_York"}, {"--population N", "how many people it holds"}, {"--address TEXT", "its address (optional)"}}},
		"admin create-staff": {usage: `kinlink admin create-staff --agency FLDOC --email ana@example.org --name "Ana Ruiz" --role agency_admin [--facility FSP]`,
			what: "Add a staff member; prints and mails a one-time enrolment link.",
			flags: [][2]string{{"--agency CODE", "the agency"}, {"--email ADDRESS", "their work address"}, {"--name NAME", "their name"},
				{"--role ROLE", "agency_admin, investigator, facility_admin, mail_reviewer, visitation_officer or finance"},
				{"--facility CODE", "the facility, for facility roles (finance without it covers the whole agency)"}, {"--lang en|es", "the language of their mail (default en)"}}},
		"roster import": {usage: "kinlink roster import --agency FLDOC roster.csv [--apply] [--allow-mass-release]",
			what: "Import an agency's full roster (CSV): a dry run that prints what would change, or with --apply the changes in one transaction.",
			flags: [][2]string{{"--agency CODE", "the agency"}, {"FILE", "the roster, CSV with a header row"}, {"--apply", "make the changes"},
				{"--allow-mass-release", "apply a file that releases more than 5 residents and more than a fifth of those it covers"}}},
		"audit verify":  {usage: "kinlink audit verify", what: "Check that the audit log's chain of hashes is intact."},
		"ledger verify": {usage: "kinlink ledger verify", what: "Check that every money movement balances and every stored balance is the sum of its entries."},
		"ledger reconcile": {usage: "kinlink ledger reconcile [--day YYYY-MM-DD]",
			what:  "Match the ledger's card money of a UTC day with the payment processor's own records, one movement at a time; differences are listed and exit non-zero. The sandbox keeps no records: nothing to reconcile.",
			flags: [][2]string{{"--day YYYY-MM-DD", "the UTC day (default yesterday)"}}},
	}
}

// wantsHelp reports whether a command's arguments ask for its help.
func wantsHelp(args []string) bool {
	return slices.ContainsFunc(args, func(a string) bool { return a == "--help" || a == "-help" || a == "-h" })
}

// printHelp writes the help of a command, or of every action of a group ("admin").
func printHelp(w io.Writer, name string) {
	helps := commandHelps()
	if h, ok := helps[name]; ok {
		fmt.Fprintf(w, "Usage: %s\n\n%s\n", h.usage, h.what)
		if len(h.flags) > 0 {
			fmt.Fprintln(w)
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			for _, f := range h.flags {
				fmt.Fprintf(tw, "  %s\t%s\n", f[0], f[1])
			}
			tw.Flush()
		}
		fmt.Fprintln(w, "\nIt reads the server's settings (the database, mail, data folder…) from the same flags and\nKINLINK_* variables as serve: \"kinlink serve --help\" lists them all.")
		return
	}
	var actions []string
	for n := range helps {
		if strings.HasPrefix(n, name+" ") {
			actions = append(actions, n)
		}
	}
	slices.Sort(actions)
	fmt.Fprintf(w, "Usage: kinlink %s <action>\n\nActions:\n", name)
	for _, n := range actions {
		fmt.Fprintf(w, "  %s\n      %s\n", helps[n].usage, helps[n].what)
	}
	fmt.Fprintf(w, "\nRun \"kinlink %s <action> --help\" for an action's flags.\n", name)
}
