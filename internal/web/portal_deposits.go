package web

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/kinlink/kinlink/internal/deposits"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/i18n"
)

// The portal's deposit pages, for the finance office (agency administrators hold
// every role): the deposits of the facilities one handles with the day's totals,
// one deposit with the decisions its state allows, the daily report, the money of
// people who left, the trust feed's keys and the agency's deposit policy. Who may
// see and decide what is the deposits service's to say; the pages only leave out
// the links a staff member could not follow.

// DepositsFrame is what every deposits page shows above its own content: the
// deposits pages the staff member may open.
type DepositsFrame struct {
	Page string // "list", "report", "released", "feed" or "settings": the page shown
	// AgencyWide: the report and the feed keys are the whole agency's, for its
	// agency-wide finance staff.
	AgencyWide bool
	// Admin: the policy is its administrators'.
	Admin bool
}

func depositsFrame(a facility.Access, page string) DepositsFrame {
	return DepositsFrame{Page: page, AgencyWide: a.Has(facility.Finance, "") && a.FacilityIDs() == nil, Admin: a.Has(facility.AgencyAdmin, "")}
}

// depositListLimit is the most deposits the list shows; a longer list asks for a
// narrower filter.
const depositListLimit = 200

// DepositListData is the list of deposits with its filter and the day's totals.
type DepositListData struct {
	DepositsFrame
	Filter   *Form // state, from, to (YYYY-MM-DD on the agency's clock), resident, sender
	States   []string
	Deposits []DepositRow
	Limited  bool // the list stopped at its limit
	Limit    int
	Today    string
	Zone     string
	Totals   DepositTotals
}

// DepositRow is a deposit as the portal lists it: its time on the agency's clock
// and its state in words.
type DepositRow struct {
	deposits.Deposit
	When      string
	StateText string
}

// DepositTotals are the figures of the day's deposits, in every state and by
// state.
type DepositTotals struct {
	Count       int
	AmountCents int64
	FeeCents    int64
	States      []StateTotal
}

// StateTotal is the count and the amount of one state's deposits.
type StateTotal struct {
	State, Text string
	Count       int
	AmountCents int64
}

func (s *Site) portalDepositsPage(w http.ResponseWriter, r *http.Request) {
	u := currentStaff(r)
	ctx, lang := r.Context(), s.Lang(r)
	loc, err := s.deposits.Clock(ctx, u.Access.AgencyID)
	if err != nil {
		s.failed(w, r, err)
		return
	}
	today, err := s.deposits.Today(ctx, u.Access.AgencyID)
	if err != nil {
		s.failed(w, r, err)
		return
	}
	// The day's totals, in every state: whether the staff member may see
	// deposits at all is the service's to say here.
	start, _ := time.ParseInLocation(time.DateOnly, today, loc)
	totals, err := s.deposits.Totals(ctx, u.Access, deposits.Filter{From: start, To: start.AddDate(0, 0, 1)})
	if err != nil {
		s.answer(w, r, err)
		return
	}
	f, filter := depositFilter(r, loc)
	status := http.StatusOK
	var list []deposits.Deposit
	if f.HasErrors() {
		// A filter that cannot be read lists nothing rather than more than asked.
		status = http.StatusBadRequest
		f.Message = s.cat.T(lang, "portal.deposits.filter.fix")
	} else if list, err = s.deposits.List(ctx, u.Access, filter); err != nil {
		s.answer(w, r, err)
		return
	}
	d := DepositListData{DepositsFrame: depositsFrame(u.Access, "list"), Filter: f, States: deposits.States(), Limit: depositListLimit,
		Limited: len(list) >= depositListLimit, Today: today, Zone: loc.String(),
		Totals: DepositTotals{Count: totals.Count, AmountCents: totals.AmountCents, FeeCents: totals.FeeCents}}
	for _, dep := range list {
		d.Deposits = append(d.Deposits, DepositRow{Deposit: dep, When: localTimeIn(lang, dep.CreatedAt, loc),
			StateText: s.cat.T(lang, "portal.deposits.state."+dep.State)})
	}
	for _, st := range deposits.States() {
		if n := totals.ByState[st]; n > 0 {
			d.Totals.States = append(d.Totals.States, StateTotal{State: st, Text: s.cat.T(lang, "portal.deposits.state."+st), Count: n,
				AmountCents: totals.CentsByState[st]})
		}
	}
	s.renderPortal(w, r, status, "portal_deposits", "portal.deposits.title", d)
}

// depositFilter reads the list's filter from the query: dates are whole days on
// the agency's clock, the last one included. What cannot be read is marked on the
// form, which keeps what was typed.
func depositFilter(r *http.Request, loc *time.Location) (*Form, deposits.Filter) {
	q := r.URL.Query()
	f := emptyForm()
	for _, k := range []string{"state", "from", "to", "resident", "sender"} {
		f.Values[k] = strings.TrimSpace(q.Get(k))
	}
	filter := deposits.Filter{Resident: f.Values["resident"], Sender: f.Values["sender"], Limit: depositListLimit}
	if st := f.Values["state"]; st != "" {
		if slices.Contains(deposits.States(), st) {
			filter.State = st
		} else {
			f.Errors["state"] = "invalid"
		}
	}
	day := func(k string) time.Time {
		if f.Values[k] == "" {
			return time.Time{}
		}
		d, err := time.ParseInLocation(time.DateOnly, f.Values[k], loc)
		if err != nil {
			f.Errors[k] = "invalid"
		}
		return d
	}
	from, to := day("from"), day("to")
	filter.From = from
	if !to.IsZero() {
		filter.To = to.AddDate(0, 0, 1)
	}
	if !from.IsZero() && !to.IsZero() && to.Before(from) {
		f.Errors["to"] = "date_order"
	}
	for _, k := range []string{"resident", "sender"} {
		if len(f.Values[k]) > 100 {
			f.Errors[k] = "too_long"
		}
	}
	return f, filter
}

// localTimeIn writes a moment on a clock, with its zone.
func localTimeIn(lang string, t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return ""
	}
	return i18n.Local(lang, t.In(loc))
}

// PortalDepositData is one deposit, with the decisions its state allows.
type PortalDepositData struct {
	DepositsFrame
	Deposit                       deposits.Deposit
	Created, Posted, Ended        string // on the agency's clock
	StateText, Reason, RefundText string
	DecidedBy                     string
	CanHold, CanRelease           bool
	CanReject                     bool
	// Uncharged: held, but the charge of the card is not confirmed yet, so it
	// cannot be released.
	Uncharged bool
	Form      *Form  // a refused decision, with the reason typed
	Decision  string // the refused decision
	Done      string
}

func (s *Site) portalDepositPage(w http.ResponseWriter, r *http.Request) {
	s.renderPortalDeposit(w, r, http.StatusOK, emptyForm(), "")
}

func (s *Site) renderPortalDeposit(w http.ResponseWriter, r *http.Request, status int, f *Form, decision string) {
	u := currentStaff(r)
	ctx, lang := r.Context(), s.Lang(r)
	dep, err := s.deposits.ForStaff(ctx, u.Access, r.PathValue("id"))
	if err != nil {
		s.answer(w, r, err)
		return
	}
	loc, err := s.deposits.Clock(ctx, u.Access.AgencyID)
	if err != nil {
		s.failed(w, r, err)
		return
	}
	d := PortalDepositData{DepositsFrame: depositsFrame(u.Access, "list"), Deposit: dep, Form: f, Decision: decision,
		Created: localTimeIn(lang, dep.CreatedAt, loc), Posted: localTimeIn(lang, dep.PostedAt, loc), Ended: localTimeIn(lang, dep.EndedAt, loc),
		StateText: s.cat.T(lang, "portal.deposits.state."+dep.State), Reason: s.depositReason(lang, dep.Reason),
		CanHold: dep.State == deposits.Pending, CanRelease: dep.State == deposits.Held && dep.Charged,
		CanReject: dep.State == deposits.Pending || dep.State == deposits.Held, Uncharged: dep.State == deposits.Held && !dep.Charged}
	if dep.Refund != "" {
		d.RefundText = s.cat.T(lang, "portal.deposits.refund."+dep.Refund)
	}
	d.DecidedBy = s.deciderName(r, lang, dep.DecidedBy)
	if done := r.URL.Query().Get("done"); done == deposits.Hold || done == deposits.Release || done == deposits.Reject {
		d.Done = "portal.deposits.done." + done
	}
	s.renderPortal(w, r, status, "portal_deposits_item", "portal.deposits.item.title", d)
}

// depositReason words why a deposit ended or was reversed: the system's reasons in
// the reader's language, a staff member's as they wrote it.
func (s *Site) depositReason(lang, reason string) string {
	if deposits.SystemReason(reason) {
		return s.cat.T(lang, "portal.deposits.reason."+reason)
	}
	return reason
}

// deciderName says who last decided a deposit: a staff member by name, the family
// or the system in words.
func (s *Site) deciderName(r *http.Request, lang, by string) string {
	switch {
	case by == "":
		return ""
	case by == "family" || by == "system":
		return s.cat.T(lang, "portal.deposits.by."+by)
	}
	id, ok := strings.CutPrefix(by, "staff:")
	if !ok {
		return by
	}
	acct, err := s.id.Account(r.Context(), id)
	if err != nil {
		return s.cat.T(lang, "portal.deposits.by.staff")
	}
	return acct.FullName + " (" + acct.Email + ")"
}

// decideDeposit holds, releases or rejects a deposit. A rejection is a form of its
// own, apart from the release, so that Enter in its reason never releases.
func (s *Site) decideDeposit(w http.ResponseWriter, r *http.Request) {
	f := newForm(r, "reason")
	decision := r.PostFormValue("decision")
	if decision != deposits.Hold && decision != deposits.Release && decision != deposits.Reject {
		s.Error(w, r, http.StatusBadRequest)
		return
	}
	id := r.PathValue("id")
	if _, err := s.deposits.Decide(r.Context(), currentStaff(r).Access, id, decision, f.Values["reason"]); err != nil {
		s.refuse(w, r, f, err, func(status int, f *Form) {
			// A reason refused is said beside it, where it is typed again.
			if _, ok := f.Errors["reason"]; ok && f.Message != "" {
				f.Said, f.Message = map[string]string{"reason": f.Message}, ""
			}
			s.renderPortalDeposit(w, r, status, f, decision)
		})
		return
	}
	http.Redirect(w, r, "/facility/deposits/"+id+"?done="+decision, http.StatusSeeOther)
}
