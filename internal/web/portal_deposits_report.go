package web

import (
	"net/http"
	"time"

	"github.com/kinlink/kinlink/internal/deposits"
)

// The finance office's reading: the daily reconciliation of the trust feed with the
// ledger (a page, and the same as a spreadsheet), and the money of people who left.

// DepositReportData is a day's reconciliation report.
type DepositReportData struct {
	DepositsFrame
	Form   *Form            // day
	Report *deposits.Report // nil when the day asked for is not a date
	Rows   []ReportRow
	Today  bool
}

// ReportRow is a row of the report, its time on the agency's clock and its kind in
// words.
type ReportRow struct {
	deposits.FeedEntry
	When, KindText string
}

func (s *Site) depositReportPage(w http.ResponseWriter, r *http.Request) {
	u := currentStaff(r)
	ctx, lang := r.Context(), s.Lang(r)
	today, err := s.deposits.Today(ctx, u.Access.AgencyID)
	if err != nil {
		s.failed(w, r, err)
		return
	}
	f := emptyForm()
	f.Values["day"] = r.URL.Query().Get("day")
	if f.Values["day"] == "" {
		f.Values["day"] = today
	}
	d := DepositReportData{DepositsFrame: depositsFrame(u.Access, "report"), Form: f, Today: f.Values["day"] == today}
	report, err := s.deposits.ReportFor(ctx, u.Access, f.Values["day"])
	if err != nil {
		s.refuse(w, r, f, err, func(status int, f *Form) {
			s.renderPortal(w, r, status, "portal_deposits_report", "portal.deposits.report.title", d)
		})
		return
	}
	loc, err := time.LoadLocation(report.Zone)
	if err != nil {
		s.failed(w, r, err)
		return
	}
	d.Report = &report
	for _, e := range report.Rows {
		d.Rows = append(d.Rows, ReportRow{FeedEntry: e, When: localTimeIn(lang, e.At, loc), KindText: s.cat.T(lang, "portal.deposits.kind."+e.Kind)})
	}
	s.renderPortal(w, r, http.StatusOK, "portal_deposits_report", "portal.deposits.report.title", d)
}

// depositReportCSV downloads a day's report as the spreadsheet the finance email
// carries; every cell of it is safe to open (Report.CSV).
func (s *Site) depositReportCSV(w http.ResponseWriter, r *http.Request) {
	u := currentStaff(r)
	day := r.URL.Query().Get("day")
	if day == "" {
		today, err := s.deposits.Today(r.Context(), u.Access.AgencyID)
		if err != nil {
			s.failed(w, r, err)
			return
		}
		day = today
	}
	report, err := s.deposits.ReportFor(r.Context(), u.Access, day)
	if err != nil {
		s.answer(w, r, err)
		return
	}
	// The day is a date the report read (YYYY-MM-DD): nothing else reaches the
	// header.
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="deposits-`+report.Day+`.csv"`)
	w.Write(report.CSV())
}

// ReleasedData is the trust money of people no longer at the agency's facilities.
type ReleasedData struct {
	DepositsFrame
	Balances []ReleasedRow
	Total    int64
}

// ReleasedRow is one person's money, with their status in words.
type ReleasedRow struct {
	deposits.Balance
	StatusText string
}

func (s *Site) releasedBalancesPage(w http.ResponseWriter, r *http.Request) {
	u := currentStaff(r)
	list, err := s.deposits.ReleasedBalances(r.Context(), u.Access)
	if err != nil {
		s.answer(w, r, err)
		return
	}
	lang := s.Lang(r)
	d := ReleasedData{DepositsFrame: depositsFrame(u.Access, "released")}
	for _, b := range list {
		d.Balances = append(d.Balances, ReleasedRow{Balance: b, StatusText: s.cat.T(lang, "portal.residents.status."+b.Status)})
		d.Total += b.BalanceCents
	}
	s.renderPortal(w, r, http.StatusOK, "portal_deposits_released", "portal.deposits.released.title", d)
}
