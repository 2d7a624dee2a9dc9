package web

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/kinlink/kinlink/internal/deposits"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/ledger"
)

// The agency's deposit policy as a form: amounts typed in dollars, limits left
// blank for none, the fee as none, tiers or a percentage with a cap.

// exampleDepositCents is the deposit whose fee the settings page shows: what a
// family sending $20 pays under the saved policy (the deposit that fee studies
// quote).
const exampleDepositCents = 2000

// DepositSettingsData is the deposit policy page.
type DepositSettingsData struct {
	DepositsFrame
	Form *Form
	// ExampleCents, ExampleFeeCents: a deposit and its fee under the saved
	// policy, as families will see it before paying.
	ExampleCents, ExampleFeeCents int64
	// Least and Most bound the largest deposit a policy allows; MostFee is the
	// largest fee.
	Least, Most, MostFee int64
	Done                 bool
}

// ExampleTotalCents is what the example deposit's card pays.
func (d DepositSettingsData) ExampleTotalCents() int64 { return d.ExampleCents + d.ExampleFeeCents }

func (s *Site) depositSettingsPage(w http.ResponseWriter, r *http.Request) {
	s.renderDepositSettings(w, r, http.StatusOK, nil)
}

func (s *Site) renderDepositSettings(w http.ResponseWriter, r *http.Request, status int, f *Form) {
	u := currentStaff(r)
	if !u.Access.Has(facility.AgencyAdmin, "") {
		s.Error(w, r, http.StatusForbidden)
		return
	}
	saved, err := s.deposits.Policy(r.Context(), u.Access.AgencyID)
	if err != nil {
		s.failed(w, r, err)
		return
	}
	if f == nil {
		f = policyForm(saved)
	}
	if len(f.Errors) > 0 {
		f.Said = s.policyWords(s.Lang(r), f)
	}
	d := DepositSettingsData{DepositsFrame: depositsFrame(u.Access, "settings"), Form: f, ExampleCents: exampleDepositCents,
		ExampleFeeCents: saved.Fee(exampleDepositCents), Least: deposits.MinDepositCents, Most: deposits.MaxDepositLimit, MostFee: deposits.MaxFeeCents,
		Done: r.URL.Query().Get("done") == "saved"}
	s.renderPortal(w, r, status, "portal_deposits_settings", "portal.deposits.settings.title", d)
}

// dollarsField writes cents as the form shows them, "300.00"; no limit is blank.
func dollarsField(c int64) string {
	if c == deposits.NoLimit {
		return ""
	}
	return fmt.Sprintf("%d.%02d", c/100, c%100)
}

// policyForm is a saved policy as its form.
func policyForm(p deposits.Policy) *Form {
	f := emptyForm()
	v := f.Values
	v["who"], v["posting"], v["chargebacks"] = "contacts", "release", p.Chargebacks
	if p.FromAnyone {
		v["who"] = "anyone"
	}
	if p.PostAtOnce {
		v["posting"] = "at_once"
	}
	v["show_sender"] = strconv.FormatBool(p.ShowSender)
	v["max_deposit"] = fmt.Sprintf("%d.%02d", p.MaxDepositCents/100, p.MaxDepositCents%100)
	v["sender_day"], v["sender_month"] = dollarsField(p.SenderDayCents), dollarsField(p.SenderMonthCents)
	v["resident_month"], v["max_balance"] = dollarsField(p.ResidentMonthCents), dollarsField(p.MaxBalanceCents)
	v["fee"] = "none"
	switch {
	case len(p.FeeTiers) > 0:
		v["fee"], v["fee_tiers"] = "tiers", deposits.FormatTiers(p.FeeTiers)
	case p.FeeBasisPoints > 0:
		v["fee"], v["fee_percent"], v["fee_cap"] = "percent", fmt.Sprintf("%d.%02d", p.FeeBasisPoints/100, p.FeeBasisPoints%100), dollarsField(p.FeeCapCents)
	}
	v["finance_email"] = p.FinanceEmail
	return f
}

// saveDepositSettings reads the policy form and saves it. What cannot be read (an
// amount that is no amount, tiers that are not tiers) is given to the service as
// a value it refuses at that same field, so that one answer names every fault at
// once and nothing is saved.
func (s *Site) saveDepositSettings(w http.ResponseWriter, r *http.Request) {
	f := newForm(r, "who", "posting", "max_deposit", "sender_day", "sender_month", "resident_month", "max_balance", "fee", "fee_tiers",
		"fee_percent", "fee_cap", "chargebacks", "finance_email")
	f.Values["show_sender"] = strconv.FormatBool(r.PostFormValue("show_sender") == "on")
	amount := func(k string, blank int64) int64 {
		v := strings.TrimSpace(f.Values[k])
		if v == "" {
			return blank
		}
		c, err := deposits.ParseDollars(v)
		if err != nil {
			return -1 // refused as out of range
		}
		return c
	}
	p := deposits.Policy{FromAnyone: f.Values["who"] == "anyone", PostAtOnce: f.Values["posting"] == "at_once",
		ShowSender: f.Values["show_sender"] == "true", MaxDepositCents: amount("max_deposit", -1),
		SenderDayCents: amount("sender_day", deposits.NoLimit), SenderMonthCents: amount("sender_month", deposits.NoLimit),
		ResidentMonthCents: amount("resident_month", deposits.NoLimit), MaxBalanceCents: amount("max_balance", deposits.NoLimit),
		Chargebacks: f.Values["chargebacks"], FinanceEmail: f.Values["finance_email"]}
	switch f.Values["fee"] {
	case "tiers":
		tiers, err := deposits.ParseTiers(f.Values["fee_tiers"])
		if err != nil || len(tiers) == 0 {
			tiers = []deposits.FeeTier{{}} // a tier up to $0: refused as invalid
		}
		p.FeeTiers = tiers
	case "percent":
		// A percentage is typed as dollars are, to the hundredth: 2.5 is 250
		// basis points.
		p.FeeBasisPoints = -1 // refused as out of range until read
		v := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(f.Values["fee_percent"]), "%"))
		if bp, err := deposits.ParseDollars(v); err == nil && bp <= 100*100 {
			p.FeeBasisPoints = int(bp)
		}
		p.FeeCapCents = amount("fee_cap", 0)
	default:
		f.Values["fee"] = "none"
	}
	if err := s.deposits.SetPolicy(r.Context(), currentStaff(r).Access, currentStaff(r).Access.AgencyID, p); err != nil {
		s.refuse(w, r, f, err, func(status int, f *Form) {
			if len(f.Errors) > 0 {
				f.Message = s.cat.T(s.Lang(r), "portal.deposits.settings.fix")
			}
			s.renderDepositSettings(w, r, status, f)
		})
		return
	}
	http.Redirect(w, r, "/facility/deposits/settings?done=saved", http.StatusSeeOther)
}

// policyWords words the faults of the policy form with the limits of each field.
func (s *Site) policyWords(lang string, f *Form) map[string]string {
	said := map[string]string{}
	most := ledger.Dollars(100 * deposits.MaxDepositLimit)
	for field, code := range f.Errors {
		var text string
		switch field + ":" + code {
		case "max_deposit:range":
			text = s.cat.T(lang, "portal.deposits.error.max_deposit", ledger.Dollars(deposits.MinDepositCents), ledger.Dollars(deposits.MaxDepositLimit))
		case "sender_day:range", "sender_month:range", "resident_month:range", "max_balance:range":
			text = s.cat.T(lang, "portal.deposits.error.limit", most)
		case "fee_tiers:invalid":
			text = s.cat.T(lang, "portal.deposits.error.fee_tiers", ledger.Dollars(deposits.MaxFeeCents))
		case "fee_percent:range":
			text = s.cat.T(lang, "portal.deposits.error.fee_percent", deposits.MaxBasisPoints/100)
		case "fee_percent:both":
			text = s.cat.T(lang, "portal.deposits.error.fee_both")
		case "fee_cap:range":
			text = s.cat.T(lang, "portal.deposits.error.fee_cap", ledger.Dollars(deposits.MaxFeeCents))
		case "chargebacks:invalid":
			text = s.cat.T(lang, "portal.deposits.error.chargebacks")
		case "finance_email:invalid":
			text = s.cat.T(lang, "portal.deposits.error.finance_email")
		default:
			continue
		}
		said[field] = text
	}
	return said
}
