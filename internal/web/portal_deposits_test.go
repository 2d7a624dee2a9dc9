package web_test

import (
	"context"
	"encoding/csv"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/apptest"
	"github.com/kinlink/kinlink/internal/contacts"
	"github.com/kinlink/kinlink/internal/deposits"
	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/ledger"
)

// familyDeposits is the deposits service on the running server's database, charging
// through processor: it stands in for the family's deposit pages (another
// branch's), so that the portal has deposits to show.
func familyDeposits(d domain, processor ledger.Processor) *deposits.Service {
	return deposits.NewService(d.db, d.fac, contacts.NewService(d.db, d.fac), ledger.New(d.db), processor,
		slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
}

// unconfirmed is a processor that never answers in time: a deposit charged through
// it stays pending until the settle job asks again.
type unconfirmed struct{ ledger.Sandbox }

func (unconfirmed) Charge(context.Context, string, int64, string) (string, error) {
	return "", ledger.ErrChargeUnknown
}

// depositor is a family depositing to its approved contact.
type depositor struct {
	domain    domain
	dep       *deposits.Service // charging the sandbox's cards
	accountID string
	contactID string
}

func newDepositor(t *testing.T, w *world, email, contactID string) depositor {
	t.Helper()
	d := serverDomain(t, w)
	acct, err := d.id.AccountByEmail(context.Background(), email)
	if err != nil {
		t.Fatal(err)
	}
	return depositor{domain: d, dep: familyDeposits(d, ledger.Sandbox{}), accountID: acct.ID, contactID: contactID}
}

// send deposits cents with a card token in the name of sender; a declined card
// is no failure here (the deposit is failed).
func (f depositor) send(t *testing.T, cents int64, token, sender string) deposits.Deposit {
	t.Helper()
	return f.sendWith(t, f.dep, cents, token, sender)
}

func (f depositor) sendWith(t *testing.T, dep *deposits.Service, cents int64, token, sender string) deposits.Deposit {
	t.Helper()
	d, err := dep.Deposit(context.Background(), f.accountID, deposits.Request{Recipient: deposits.Recipient{ContactID: f.contactID},
		AmountCents: cents, Token: token, Sender: deposits.Sender{Name: sender, Address: "12 Palm Street, Miami, FL 33101"}, Key: ids.New()})
	if err != nil && !errors.Is(err, ledger.ErrDeclined) {
		t.Fatalf("deposit of %d from %s: %v", cents, sender, err)
	}
	return d
}

// trust is what a resident has in their trust account, by the ledger.
func (f depositor) trust(t *testing.T, residentID string) int64 {
	t.Helper()
	b, err := ledger.New(f.domain.db).Balance(context.Background(), ledger.ResidentOf(residentID))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// otherAgencyFinance is the finance officer of another agency (TXDOC), signed in.
func otherAgencyFinance(t *testing.T, w *world) *world {
	t.Helper()
	w.operator(t, "admin", "create-agency", "--code", "TXDOC", "--name", "Texas DOC", "--state", "TX")
	w.operator(t, "admin", "create-facility", "--agency", "TXDOC", "--code", "HUN", "--name", "Huntsville Unit",
		"--type", "prison", "--timezone", "America/Chicago", "--population", "1700")
	w.operator(t, "admin", "create-staff", "--agency", "TXDOC", "--email", "tx.finance@example.org", "--name", "Tex", "--role", "finance")
	secret := enrolFromMail(t, w, "tx.finance@example.org", "staff pass 43!")
	tx := w.browser(t)
	if res := tx.portalLogin(t, "tx.finance@example.org", "staff pass 43!", secret); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("portal login of the Texas finance officer: %d", res.StatusCode)
	}
	return tx
}

// depositPolicy saves the deposit settings form as an agency administrator, with
// the defaults' values unless more says otherwise.
func depositPolicy(t *testing.T, admin *world, more url.Values) {
	t.Helper()
	form := url.Values{"who": {"contacts"}, "posting": {"at_once"}, "show_sender": {"on"}, "max_deposit": {"300"}, "sender_day": {"1000"},
		"sender_month": {"3000"}, "resident_month": {"5000"}, "max_balance": {""}, "fee": {"none"}, "chargebacks": {"platform"}}
	for k, v := range more {
		form[k] = v
	}
	if res, page := admin.post(t, "/facility/deposits/settings", form); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("deposit settings: %d\n%s", res.StatusCode, page)
	}
}

func TestFinanceOfficeFindsDepositsAndTheDaysTotals(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		contactID, _ := approvedContact(t, w, "ana@example.org")
		fam := newDepositor(t, w, "ana@example.org", contactID)
		ana := fam.send(t, 2000, ledger.SandboxCard, "Ana García")
		luis := fam.send(t, 3550, ledger.SandboxCard, "Luis Pérez")
		declined := fam.send(t, 1000, ledger.SandboxDeclined, "Ana García")
		if ana.State != deposits.Posted || luis.State != deposits.Posted || declined.State != deposits.Failed {
			t.Fatalf("deposits: %s %s %s", ana.State, luis.State, declined.State)
		}
		finance := staffBrowser(t, w, "finance@example.org", "--role", "finance")

		if _, home := finance.get(t, "/facility"); !strings.Contains(home, `id="deposits-link"`) {
			t.Errorf("the finance officer's menu has no Deposits link")
		}
		res, page := finance.get(t, "/facility/deposits")
		if res.StatusCode != 200 {
			t.Fatalf("deposits page: %d\n%s", res.StatusCode, page)
		}
		for _, want := range []string{ana.Confirmation, luis.Confirmation, declined.Confirmation, "Luis Pérez", "A100", "José García", "FSP",
			`id="totals-count">3<`, `id="totals-posted">2 · $55.50<`, `id="totals-failed">1 · $10.00<`, `id="totals-amount">$65.50<`,
			`href="/facility/deposits/` + ana.ID + `"`} {
			if !strings.Contains(page, want) {
				t.Errorf("the deposits page lacks %q", want)
			}
		}

		// The filter narrows the list and keeps what it was given.
		_, page = finance.get(t, "/facility/deposits?state=posted&sender=luis")
		if !strings.Contains(page, luis.Confirmation) || strings.Contains(page, ana.Confirmation) || strings.Contains(page, declined.Confirmation) {
			t.Errorf("posted deposits from luis: the list is wrong")
		}
		if !strings.Contains(page, `<option value="posted" selected>`) || !strings.Contains(page, `name="sender" value="luis"`) {
			t.Errorf("the filter lost its values")
		}
		// The day's totals stay the whole day's, whatever the filter.
		if !strings.Contains(page, `id="totals-count">3<`) {
			t.Errorf("the filter changed the day's totals")
		}
		_, page = finance.get(t, "/facility/deposits?state=failed")
		if !strings.Contains(page, declined.Confirmation) || strings.Contains(page, ana.Confirmation) {
			t.Errorf("failed deposits: the list is wrong")
		}
		_, page = finance.get(t, "/facility/deposits?resident=garc")
		if !strings.Contains(page, ana.Confirmation) || !strings.Contains(page, luis.Confirmation) {
			t.Errorf("deposits to a resident found by name: the list is wrong")
		}
		if _, page = finance.get(t, "/facility/deposits?resident=A101"); !strings.Contains(page, `id="no-deposits"`) {
			t.Errorf("deposits to another resident are listed")
		}
		today, err := fam.dep.Today(context.Background(), ana.AgencyID)
		if err != nil {
			t.Fatal(err)
		}
		day, _ := time.Parse(time.DateOnly, today)
		if _, page = finance.get(t, "/facility/deposits?from="+today+"&to="+today); !strings.Contains(page, ana.Confirmation) {
			t.Errorf("today's deposits, from and to today: the list is wrong")
		}
		tomorrow := day.AddDate(0, 0, 1).Format(time.DateOnly)
		if _, page = finance.get(t, "/facility/deposits?from="+tomorrow); !strings.Contains(page, `id="no-deposits"`) {
			t.Errorf("deposits from tomorrow are listed")
		}
		res, page = finance.get(t, "/facility/deposits?from=2026-13-45&sender=luis")
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(page, `name="from" value="2026-13-45"`) ||
			!strings.Contains(page, "does not look right") || strings.Contains(page, luis.Confirmation) {
			t.Errorf("a date that is none: %d", res.StatusCode)
		}
		res, page = finance.get(t, "/facility/deposits?from="+today+"&to="+day.AddDate(0, 0, -1).Format(time.DateOnly))
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(page, "The end date is before the start date") {
			t.Errorf("dates in the wrong order: %d", res.StatusCode)
		}

		// One deposit, all of it.
		res, page = finance.get(t, "/facility/deposits/"+ana.ID)
		for _, want := range []string{"12 Palm Street, Miami, FL 33101", "Ana García", `id="deposit-amount">$20.00<`, `id="deposit-total">$20.00<`,
			"Posted to the trust account", ana.ChargeID} {
			if !strings.Contains(page, want) {
				t.Errorf("the deposit's page lacks %q", want)
			}
		}
		if res.StatusCode != 200 || strings.Contains(page, `id="release"`) || strings.Contains(page, `id="reject"`) {
			t.Errorf("a posted deposit's page: %d, or it offers decisions", res.StatusCode)
		}
		if _, page = finance.get(t, "/facility/deposits/"+declined.ID); !strings.Contains(page, "The card was declined.") {
			t.Errorf("the declined deposit's page does not say why")
		}

		// A mail reviewer of the facility has no deposits pages.
		reviewer := staffBrowser(t, w, "reviewer@example.org", "--role", "mail_reviewer", "--facility", "FSP")
		if _, home := reviewer.get(t, "/facility"); strings.Contains(home, `id="deposits-link"`) {
			t.Errorf("the mail reviewer's menu links deposits")
		}
		for _, path := range []string{"/facility/deposits", "/facility/deposits/" + ana.ID, "/facility/deposits/report", "/facility/deposits/report.csv",
			"/facility/deposits/released", "/facility/deposits/feed-keys", "/facility/deposits/settings"} {
			if res, page := reviewer.get(t, path); res.StatusCode != http.StatusForbidden || strings.Contains(page, "Ana García") {
				t.Errorf("the mail reviewer opens %s: %d", path, res.StatusCode)
			}
		}
		if res, _ := reviewer.post(t, "/facility/deposits/"+ana.ID+"/decide", url.Values{"decision": {"reject"}, "reason": {"no"}}); res.StatusCode != http.StatusForbidden {
			t.Errorf("the mail reviewer decides a deposit: %d", res.StatusCode)
		}

		// The finance officer of another facility, and of another agency, do not
		// find it.
		lci := staffBrowser(t, w, "lci.finance@example.org", "--role", "finance", "--facility", "LCI")
		tx := otherAgencyFinance(t, w)
		for name, b := range map[string]*world{"LCI's finance officer": lci, "another agency's finance officer": tx} {
			if res, page := b.get(t, "/facility/deposits/"+ana.ID); res.StatusCode != http.StatusNotFound || strings.Contains(page, "Ana García") {
				t.Errorf("%s opens the deposit: %d", name, res.StatusCode)
			}
			if res, _ := b.post(t, "/facility/deposits/"+ana.ID+"/decide", url.Values{"decision": {"reject"}, "reason": {"no"}}); res.StatusCode != http.StatusNotFound {
				t.Errorf("%s decides the deposit: %d", name, res.StatusCode)
			}
			if res, page := b.get(t, "/facility/deposits"); res.StatusCode != 200 || strings.Contains(page, ana.Confirmation) || !strings.Contains(page, `id="totals-count">0<`) {
				t.Errorf("%s lists the deposit: %d", name, res.StatusCode)
			}
		}
		// The report is the whole agency's: not a facility's finance officer's.
		if res, _ := lci.get(t, "/facility/deposits/report"); res.StatusCode != http.StatusForbidden {
			t.Errorf("a facility's finance officer opens the agency's report: %d", res.StatusCode)
		}
	})
}

func TestFinanceOfficeHoldsReleasesAndRejects(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		contactID, _ := approvedContact(t, w, "ana@example.org")
		admin := staffBrowser(t, w, "agency.admin@example.org", "--role", "agency_admin")
		depositPolicy(t, admin, url.Values{"posting": {"release"}})
		finance := staffBrowser(t, w, "finance@example.org", "--role", "finance")
		fam := newDepositor(t, w, "ana@example.org", contactID)

		// Paid and held: the trust account waits for the release.
		held := fam.send(t, 2000, ledger.SandboxCard, "Ana García")
		if held.State != deposits.Held || !held.Charged || fam.trust(t, held.ResidentID) != 0 {
			t.Fatalf("a deposit of an agency that releases: %s, charged %t", held.State, held.Charged)
		}
		path := "/facility/deposits/" + held.ID
		_, page := finance.get(t, path)
		if !strings.Contains(page, "Held for review") || !strings.Contains(page, `id="release"`) || !strings.Contains(page, `id="reject"`) ||
			strings.Contains(page, `id="hold"`) {
			t.Errorf("a held deposit's decisions are wrong")
		}
		res, _ := finance.post(t, path+"/decide", url.Values{"decision": {"release"}})
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != path+"?done=release" {
			t.Fatalf("release: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		_, page = finance.get(t, path+"?done=release")
		if !strings.Contains(page, "The deposit is posted to the trust account.") || !strings.Contains(page, `id="deposit-state">Posted to the trust account<`) ||
			!strings.Contains(page, "Staff finance@example.org") || !strings.Contains(page, `id="deposit-posted"`) {
			t.Errorf("the released deposit's page:\n%s", page)
		}
		if b := fam.trust(t, held.ResidentID); b != 2000 {
			t.Errorf("the trust account after the release: %d", b)
		}
		// Decided once: a second decision is refused in words.
		if res, page := finance.post(t, path+"/decide", url.Values{"decision": {"reject"}, "reason": {"Too late"}}); res.StatusCode != http.StatusConflict ||
			!strings.Contains(page, "can no longer be changed that way") || !strings.Contains(page, "Posted to the trust account") {
			t.Errorf("rejecting a posted deposit: %d", res.StatusCode)
		}
		if res, _ := finance.post(t, path+"/decide", url.Values{"decision": {"approve"}}); res.StatusCode != http.StatusBadRequest {
			t.Errorf("a decision that is none: %d", res.StatusCode)
		}

		// Pending (the card's charge not confirmed): held, then released once the
		// charge is confirmed.
		pending := fam.sendWith(t, familyDeposits(fam.domain, unconfirmed{}), 1500, ledger.SandboxCard, "Ana García")
		if pending.State != deposits.Pending {
			t.Fatalf("an unconfirmed charge: %s", pending.State)
		}
		path = "/facility/deposits/" + pending.ID
		if _, page = finance.get(t, path); !strings.Contains(page, `id="hold"`) || strings.Contains(page, `id="release"`) {
			t.Errorf("a pending deposit's decisions are wrong")
		}
		if res, _ := finance.post(t, path+"/decide", url.Values{"decision": {"hold"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("hold: %d", res.StatusCode)
		}
		_, page = finance.get(t, path)
		if !strings.Contains(page, "Held for review") || !strings.Contains(page, `id="uncharged"`) || strings.Contains(page, `id="release"`) {
			t.Errorf("a held deposit whose charge is not confirmed:\n%s", page)
		}
		if res, page := finance.post(t, path+"/decide", url.Values{"decision": {"release"}}); res.StatusCode != http.StatusConflict ||
			!strings.Contains(page, "can no longer be changed that way") {
			t.Errorf("releasing a deposit whose charge is not confirmed: %d", res.StatusCode)
		}
		if err := fam.dep.Settle(context.Background(), pending.ID); err != nil {
			t.Fatal(err)
		}
		if b := fam.trust(t, held.ResidentID); b != 2000 {
			t.Errorf("the trust account grew before the release: %d", b)
		}
		if res, _ := finance.post(t, path+"/decide", url.Values{"decision": {"release"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("release once charged: %d", res.StatusCode)
		}
		if b := fam.trust(t, held.ResidentID); b != 3500 {
			t.Errorf("the trust account after the second release: %d", b)
		}

		// Rejected: a reason is needed, and the typed one is kept when refused.
		rejected := fam.send(t, 1200, ledger.SandboxCard, "Ana García")
		path = "/facility/deposits/" + rejected.ID
		res, page = finance.post(t, path+"/decide", url.Values{"decision": {"reject"}, "reason": {"  "}})
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(page, "Write why the deposit is rejected") ||
			!strings.Contains(page, `id="reject-reason-error"`) || !strings.Contains(page, "Held for review") {
			t.Errorf("a rejection without a reason: %d\n%s", res.StatusCode, page)
		}
		long := strings.Repeat("Not on the list. ", 30)
		res, page = finance.post(t, path+"/decide", url.Values{"decision": {"reject"}, "reason": {long}})
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(page, `value="`+long+`"`) {
			t.Errorf("a rejection with a reason too long: %d, or the reason was lost", res.StatusCode)
		}
		res, _ = finance.post(t, path+"/decide", url.Values{"decision": {"reject"}, "reason": {"The sender is not on the approved list"}})
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("reject: %d", res.StatusCode)
		}
		d, err := fam.dep.Of(context.Background(), fam.accountID, rejected.ID)
		if err != nil || d.State != deposits.Rejected || d.Refund == "" {
			t.Fatalf("the rejected deposit: %+v %v", d, err)
		}
		jobs := w.JobsSettled(t)
		if apptest.Succeeded(jobs, deposits.SettleJob) == 0 {
			t.Errorf("no settle job ran")
		}
		_, page = finance.get(t, path)
		for _, want := range []string{"Rejected (refunded)", "The sender is not on the approved list", `id="deposit-refund">Refunded to the card`} {
			if !strings.Contains(page, want) {
				t.Errorf("the rejected deposit's page lacks %q", want)
			}
		}
		if strings.Contains(page, `id="reject"`) || strings.Contains(page, `id="release"`) {
			t.Errorf("a rejected deposit offers decisions")
		}
		if b := fam.trust(t, held.ResidentID); b != 3500 {
			t.Errorf("the rejection changed the trust account: %d", b)
		}
	})
}

func TestPortalDepositSettingsRoundTripAndRefuseBadValues(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		setupAgency(t, w)
		admin := staffBrowser(t, w, "agency.admin@example.org", "--role", "agency_admin")
		res, page := admin.get(t, "/facility/deposits/settings")
		if res.StatusCode != 200 {
			t.Fatalf("settings: %d", res.StatusCode)
		}
		for _, want := range []string{`name="max_deposit" value="300.00"`, `name="sender_day" value="1000.00"`, `name="sender_month" value="3000.00"`,
			`name="resident_month" value="5000.00"`, `name="max_balance" value=""`, `value="none" id="fee-none" checked`,
			`value="platform" id="chargebacks-platform" checked`, `value="at_once" id="posting-at-once" checked`, `id="show-sender" checked`,
			"a deposit of $20.00 costs a fee of $0.00: the card pays $20.00"} {
			if !strings.Contains(page, want) {
				t.Errorf("the default settings lack %q", want)
			}
		}

		depositPolicy(t, admin, url.Values{"who": {"anyone"}, "posting": {"release"}, "show_sender": nil, "max_deposit": {"250"},
			"sender_day": {"$500"}, "sender_month": {"1,500.50"}, "resident_month": {""}, "max_balance": {"2000"}, "fee": {"tiers"},
			"fee_tiers": {"10:0.50, 100:1.95, 300:3.95"}, "chargebacks": {"resident"}, "finance_email": {"finance@fldoc.example.gov"}})
		_, page = admin.get(t, "/facility/deposits/settings?done=saved")
		for _, want := range []string{`id="done"`, `value="anyone" id="who-anyone" checked`, `value="release" id="posting-release" checked`,
			`name="max_deposit" value="250.00"`, `name="sender_day" value="500.00"`, `name="sender_month" value="1500.50"`, `name="resident_month" value=""`,
			`name="max_balance" value="2000.00"`, `value="tiers" id="fee-tiers-choice" checked`, `name="fee_tiers" value="10.00:0.50, 100.00:1.95, 300.00:3.95"`,
			`value="resident" id="chargebacks-resident" checked`, `name="finance_email" value="finance@fldoc.example.gov"`,
			"a deposit of $20.00 costs a fee of $1.95: the card pays $21.95"} {
			if !strings.Contains(page, want) {
				t.Errorf("the saved settings lack %q", want)
			}
		}
		if strings.Contains(page, `id="show-sender" checked`) {
			t.Errorf("showing the sender was not turned off")
		}

		depositPolicy(t, admin, url.Values{"fee": {"percent"}, "fee_percent": {"2.5"}, "fee_cap": {"3"}})
		_, page = admin.get(t, "/facility/deposits/settings")
		if !strings.Contains(page, `name="fee_percent" value="2.50"`) || !strings.Contains(page, `name="fee_cap" value="3.00"`) ||
			!strings.Contains(page, "costs a fee of $0.50") {
			t.Errorf("a percentage fee did not round-trip")
		}

		// Bad values: each field says what it takes, what was typed stays, and
		// nothing is saved.
		bad := url.Values{"who": {"contacts"}, "posting": {"at_once"}, "max_deposit": {"abc"}, "sender_day": {"-5"}, "sender_month": {"3000"},
			"resident_month": {""}, "max_balance": {"2000000"}, "fee": {"tiers"}, "fee_tiers": {"100:1, 20:0"}, "chargebacks": {"platform"},
			"finance_email": {"finance at fldoc"}}
		res, page = admin.post(t, "/facility/deposits/settings", bad)
		if res.StatusCode != http.StatusBadRequest {
			t.Fatalf("bad settings: %d", res.StatusCode)
		}
		for _, want := range []string{"Nothing was saved", "Enter an amount from $1.00 to $10000.00.", "up to $1000000.00, or leave it blank",
			"Write the tiers as up-to:fee pairs", "Enter one email address", `name="max_deposit" value="abc"`, `name="sender_day" value="-5"`,
			`name="max_balance" value="2000000"`, `name="fee_tiers" value="100:1, 20:0"`, `name="finance_email" value="finance at fldoc"`,
			`id="max-deposit-error"`, `id="sender-day-error"`, `id="max-balance-error"`, `id="fee-tiers-error"`, `id="finance-email-error"`,
			// The example is the saved policy's.
			"costs a fee of $0.50"} {
			if !strings.Contains(page, want) {
				t.Errorf("the refused settings lack %q", want)
			}
		}
		if strings.Contains(page, `id="sender-month-error"`) {
			t.Errorf("a good value is said to be wrong")
		}
		res, page = admin.post(t, "/facility/deposits/settings", url.Values{"who": {"contacts"}, "posting": {"at_once"}, "max_deposit": {"300"},
			"fee": {"percent"}, "fee_percent": {"12"}, "fee_cap": {"30"}, "chargebacks": {"platform"}})
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(page, "Enter a percentage from 0 to 10.") ||
			!strings.Contains(page, "Enter an amount up to $25.00, or leave it blank for no cap.") || !strings.Contains(page, `name="fee_percent" value="12"`) {
			t.Errorf("a percentage out of range: %d", res.StatusCode)
		}
		_, page = admin.get(t, "/facility/deposits/settings")
		if !strings.Contains(page, `name="max_deposit" value="300.00"`) || !strings.Contains(page, `name="fee_percent" value="2.50"`) {
			t.Errorf("refused settings changed the saved ones")
		}

		// In Spanish.
		es := admin.Get(t, "/facility/deposits/settings", "Accept-Language", "es")
		if body := apptest.Body(t, es); !strings.Contains(body, "Ajustes de depósitos") || !strings.Contains(body, "la tarjeta paga $20.50") {
			t.Errorf("the settings in Spanish:\n%s", body)
		}

		// The policy is the administrators': finance staff cannot open it.
		finance := staffBrowser(t, w, "finance@example.org", "--role", "finance")
		if res, _ := finance.get(t, "/facility/deposits/settings"); res.StatusCode != http.StatusForbidden {
			t.Errorf("a finance officer opens the settings: %d", res.StatusCode)
		}
		if res, _ := finance.post(t, "/facility/deposits/settings", bad); res.StatusCode != http.StatusForbidden {
			t.Errorf("a finance officer saves the settings: %d", res.StatusCode)
		}
		if _, page := finance.get(t, "/facility/deposits"); strings.Contains(page, `id="deposits-settings-link"`) || !strings.Contains(page, `id="deposits-report-link"`) {
			t.Errorf("the finance officer's deposit pages are wrong")
		}
	})
}

var newFeedKey = regexp.MustCompile(`id="new-key">(klfeed_[A-Za-z0-9_-]+)<`)

func TestPortalDepositFeedKeysReportAndReleasedBalances(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		contactID, _ := approvedContact(t, w, "ana@example.org")
		finance := staffBrowser(t, w, "finance@example.org", "--role", "finance")
		fam := newDepositor(t, w, "ana@example.org", contactID)
		ctx := context.Background()

		// A feed key is shown once, then listed, then revoked.
		if _, page := finance.get(t, "/facility/deposits/feed-keys"); !strings.Contains(page, `id="no-keys"`) {
			t.Errorf("a new agency has feed keys")
		}
		if res, page := finance.post(t, "/facility/deposits/feed-keys", url.Values{"name": {""}}); res.StatusCode != http.StatusBadRequest ||
			!strings.Contains(page, "Name the key in 1 to 100 characters.") {
			t.Errorf("a key without a name: %d", res.StatusCode)
		}
		res, page := finance.post(t, "/facility/deposits/feed-keys", url.Values{"name": {"Trust system (production)"}})
		m := newFeedKey.FindStringSubmatch(page)
		if res.StatusCode != 200 || m == nil || !strings.Contains(page, "/api/v1/agency/deposits?since=0") || !strings.Contains(page, "Authorization: Bearer") {
			t.Fatalf("a new feed key: %d\n%s", res.StatusCode, page)
		}
		key := m[1]
		_, page = finance.get(t, "/facility/deposits/feed-keys")
		if strings.Contains(page, key) || !strings.Contains(page, "Trust system (production)") || !strings.Contains(page, "never used") {
			t.Errorf("the keys after making one: shown again, or not listed")
		}
		agency, err := fam.dep.FeedAgency(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		_, page = finance.get(t, "/facility/deposits/feed-keys")
		revoke := regexp.MustCompile(`/facility/deposits/feed-keys/([0-9a-f]+)/revoke`).FindStringSubmatch(page)
		if !strings.Contains(page, "last used") || revoke == nil {
			t.Fatalf("a used key:\n%s", page)
		}
		if res, _ := finance.post(t, revoke[0], nil); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("revoke: %d", res.StatusCode)
		}
		_, page = finance.get(t, "/facility/deposits/feed-keys?done=revoked")
		if !strings.Contains(page, `id="revoked-`+revoke[1]+`"`) || strings.Contains(page, revoke[0]) {
			t.Errorf("the revoked key is not said revoked, or can be revoked again")
		}
		if _, err := fam.dep.FeedAgency(ctx, key); !errors.Is(err, deposits.ErrBadFeedKey) {
			t.Errorf("a revoked key still reads the feed: %v", err)
		}
		lci := staffBrowser(t, w, "lci.finance@example.org", "--role", "finance", "--facility", "LCI")
		if res, _ := lci.post(t, "/facility/deposits/feed-keys", url.Values{"name": {"Mine"}}); res.StatusCode != http.StatusForbidden {
			t.Errorf("a facility's finance officer makes a key for the agency's feed: %d", res.StatusCode)
		}

		// The day's report: two posted, one reversed by a chargeback, one held
		// and rejected.
		formula := fam.send(t, 2000, ledger.SandboxCard, `=HYPERLINK("x")`)
		luis := fam.send(t, 3550, ledger.SandboxCard, "Luis Pérez")
		if err := fam.dep.HandleEvent(ctx, ledger.PaymentEvent{ID: "evt_dispute_1", Kind: ledger.EventDisputed, ChargeID: luis.ChargeID,
			AmountCents: luis.TotalCents()}); err != nil {
			t.Fatal(err)
		}
		admin := staffBrowser(t, w, "agency.admin@example.org", "--role", "agency_admin")
		depositPolicy(t, admin, url.Values{"posting": {"release"}})
		held := fam.send(t, 1000, ledger.SandboxCard, "Ana García")
		if res, _ := finance.post(t, "/facility/deposits/"+held.ID+"/decide", url.Values{"decision": {"reject"}, "reason": {"Unknown sender"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("reject: %d", res.StatusCode)
		}
		today, _ := fam.dep.Today(ctx, agency)
		res, page = finance.get(t, "/facility/deposits/report")
		if res.StatusCode != 200 {
			t.Fatalf("report: %d\n%s", res.StatusCode, page)
		}
		for _, want := range []string{"Today, " + today, `id="report-posted">2<`, `id="report-reversed">1<`, `id="report-refunded">1<`,
			`id="report-trust">$20.00<`, `id="report-fees">$0.00<`, `id="ledger-trust">$20.00<`, `id="report-matches"`,
			"The report matches the ledger", `=HYPERLINK(&#34;x&#34;)`, "-$35.50", formula.Confirmation, held.Confirmation,
			`href="/facility/deposits/report.csv?day=` + today + `"`} {
			if !strings.Contains(page, want) {
				t.Errorf("the report lacks %q", want)
			}
		}
		if strings.Contains(page, `id="report-mismatch"`) {
			t.Errorf("the report says it does not match the ledger")
		}
		if res, page := finance.get(t, "/facility/deposits/report?day=2026-02-30"); res.StatusCode != http.StatusBadRequest ||
			!strings.Contains(page, `name="day" value="2026-02-30"`) || !strings.Contains(page, `id="day-error"`) {
			t.Errorf("a report of a day that is none: %d", res.StatusCode)
		}
		if _, page := finance.get(t, "/facility/deposits/report?day=2020-01-01"); !strings.Contains(page, `id="report-empty"`) {
			t.Errorf("a day with no deposits has rows")
		}

		// The same as a spreadsheet, safe to open.
		res = finance.Get(t, "/facility/deposits/report.csv")
		body := apptest.Body(t, res)
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/csv; charset=utf-8" ||
			res.Header.Get("Content-Disposition") != `attachment; filename="deposits-`+today+`.csv"` {
			t.Fatalf("the CSV: %d %q %q", res.StatusCode, res.Header.Get("Content-Type"), res.Header.Get("Content-Disposition"))
		}
		r := csv.NewReader(strings.NewReader(body))
		r.FieldsPerRecord = -1 // the totals under the rows are shorter
		records, err := r.ReadAll()
		if err != nil {
			t.Fatalf("the CSV does not read: %v\n%s", err, body)
		}
		var sawFormula, sawReversal bool
		for _, rec := range records {
			if len(rec) < 13 {
				continue
			}
			if rec[10] == `'=HYPERLINK("x")` {
				sawFormula = true
			}
			if rec[1] == "reversed" && rec[7] == "-35.50" {
				sawReversal = true
			}
			if strings.HasPrefix(rec[10], "=") {
				t.Errorf("a sender's name opens as a formula: %q", rec[10])
			}
		}
		if !sawFormula || !sawReversal || !strings.Contains(body, "matches_ledger,true") {
			t.Errorf("the CSV: formula escaped %t, reversal unescaped %t\n%s", sawFormula, sawReversal, body)
		}
		if res := finance.Get(t, "/facility/deposits/report.csv?day=yesterday"); res.StatusCode != http.StatusBadRequest {
			t.Errorf("a CSV of a day that is none: %d", res.StatusCode)
		} else {
			apptest.Body(t, res)
		}

		// Balances at release: José's money waits for the agency's refund once he
		// is released.
		if _, page := finance.get(t, "/facility/deposits/released"); !strings.Contains(page, `id="no-balances"`) {
			t.Errorf("an active resident's money is listed at release")
		}
		w.importRoster(t, strings.Replace(roster, "A100,García,José,FSP,B-12,active,", "A100,García,José,FSP,B-12,released,", 1))
		_, page = finance.get(t, "/facility/deposits/released")
		for _, want := range []string{`id="balance-A100"`, "José García", "released", "$20.00", "Total to pay back: $20.00"} {
			if !strings.Contains(page, want) {
				t.Errorf("the balances at release lack %q", want)
			}
		}
		if _, page := lci.get(t, "/facility/deposits/released"); strings.Contains(page, "José García") {
			t.Errorf("another facility's finance officer sees José's balance")
		}
	})
}
