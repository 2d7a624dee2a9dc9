package deposits

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/ledger"
	kmail "github.com/kinlink/kinlink/internal/mail"
	"github.com/kinlink/kinlink/internal/problem"
	"github.com/kinlink/kinlink/internal/textsafe"
)

// ErrBadDay is a report day that is not a date.
var ErrBadDay = problem.Declare(problem.Invalid, "invalid_request", "deposits: the day is not a date (YYYY-MM-DD)").
	On("day", "invalid")

// Report is an agency's daily reconciliation: the feed's rows of one day (on the
// agency's clock), their totals, and the same totals as the ledger moved them.
type Report struct {
	Agency string
	Day    string // YYYY-MM-DD
	Zone   string
	Rows   []FeedEntry

	// Spent counts rows of residents' spending here (and its refunds).
	Posted, Reversed, Reinstated, Refunded, Spent int
	// TrustCents is what the rows change in trust accounts (posted minus
	// reversed); FeeCents the fees of the rows posted.
	TrustCents int64
	FeeCents   int64
	// LedgerTrustCents and LedgerFeeCents are the same figures summed from the
	// ledger's own entries of those deposits: a report whose figures differ says so.
	LedgerTrustCents int64
	LedgerFeeCents   int64
}

// Matches reports whether the feed's figures are the ledger's.
func (r Report) Matches() bool {
	return r.TrustCents == r.LedgerTrustCents && r.FeeCents == r.LedgerFeeCents
}

// zone is the clock an agency's days are counted on: its first facility's.
func (s *Service) zone(ctx context.Context, agencyID string) (*time.Location, error) {
	list, err := s.fac.Facilities(ctx, agencyID)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return time.UTC, nil
	}
	return time.LoadLocation(list[0].TimeZone)
}

// ReportFor returns an agency's report of day to its finance staff.
func (s *Service) ReportFor(ctx context.Context, by facility.Access, day string) (Report, error) {
	if err := finance(by, by.AgencyID, ""); err != nil {
		return Report{}, err
	}
	if !agencyFinance(by) {
		return Report{}, facility.ErrForbidden // the report is the whole agency's
	}
	return s.report(ctx, by.AgencyID, day)
}

// Today is the agency's date now, as reports name days.
func (s *Service) Today(ctx context.Context, agencyID string) (string, error) {
	loc, err := s.zone(ctx, agencyID)
	if err != nil {
		return "", err
	}
	return s.now().In(loc).Format(time.DateOnly), nil
}

// Clock is the time zone an agency's days are counted on (Today's and the
// reports'): the portal turns the dates finance staff pick into instants on it, so
// that its filters and daily totals cut days where the reports do.
func (s *Service) Clock(ctx context.Context, agencyID string) (*time.Location, error) {
	return s.zone(ctx, agencyID)
}

func (s *Service) report(ctx context.Context, agencyID, day string) (Report, error) {
	loc, err := s.zone(ctx, agencyID)
	if err != nil {
		return Report{}, err
	}
	d, err := time.ParseInLocation(time.DateOnly, day, loc)
	if err != nil {
		return Report{}, ErrBadDay
	}
	a, err := s.fac.Agency(ctx, agencyID)
	if err != nil {
		return Report{}, err
	}
	r := Report{Agency: a.Name, Day: day, Zone: loc.String()}
	rows, err := s.db.Read().QueryContext(ctx, "SELECT "+feedColumns+", f.ledger_key"+feedFrom+"WHERE f.agency_id = $1 AND f.at >= $2 AND f.at < $3 ORDER BY f.seq",
		agencyID, d.UTC(), d.AddDate(0, 0, 1).UTC())
	if err != nil {
		return r, fmt.Errorf("deposits: report: %w", err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var key string
		e, err := scanFeed(rows, &key)
		if err != nil {
			return r, fmt.Errorf("deposits: report: %w", err)
		}
		r.Rows = append(r.Rows, e)
		r.TrustCents += e.AmountCents
		if key != "" {
			keys = append(keys, key)
		}
		switch e.Kind {
		case FeedPosted:
			r.Posted++
			r.FeeCents += e.FeeCents
		case FeedReversed:
			r.Reversed++
		case FeedReinstated:
			r.Reinstated++
		case FeedRefunded:
			r.Refunded++
		case FeedSpent, FeedSpendRefunded:
			r.Spent++
		}
	}
	if err := rows.Err(); err != nil {
		return r, err
	}
	moves, err := s.ledger.Movements(ctx, keys)
	if err != nil {
		return r, err
	}
	for _, m := range moves {
		switch {
		case m.AccountKind == ledger.Resident:
			r.LedgerTrustCents += m.Amount
		case m.AccountKind == ledger.Platform && m.TransactionKind == "deposit.post":
			r.LedgerFeeCents += m.Amount
		}
	}
	return r, nil
}

// CSV is the report as a spreadsheet: one line per row, then the totals. Every
// cell is safe to open (textsafe.SpreadsheetCell): senders' names and addresses
// are typed by anyone.
func (r Report) CSV() []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	write := func(cells ...string) {
		for i, c := range cells {
			cells[i] = textsafe.SpreadsheetCell(c)
		}
		w.Write(cells)
	}
	write("seq", "kind", "time_utc", "confirmation", "resident_id", "resident_name", "facility", "trust_amount", "deposit_amount",
		"fee", "sender_name", "sender_address", "memo")
	for _, e := range r.Rows {
		write(strconv.FormatInt(e.Seq, 10), e.Kind, e.At.Format(time.RFC3339), e.Confirmation, e.ResidentNumber, e.ResidentName,
			e.FacilityCode, money(e.AmountCents), money(e.DepositCents), money(e.FeeCents), e.SenderName, e.SenderAddress, e.Memo)
	}
	write()
	write("agency", r.Agency)
	write("day", r.Day, r.Zone)
	write("posted", strconv.Itoa(r.Posted))
	write("reversed", strconv.Itoa(r.Reversed))
	write("reinstated", strconv.Itoa(r.Reinstated))
	write("refunded_before_posting", strconv.Itoa(r.Refunded))
	write("spending_rows", strconv.Itoa(r.Spent))
	write("trust_total", money(r.TrustCents))
	write("fee_total", money(r.FeeCents))
	write("ledger_trust_total", money(r.LedgerTrustCents))
	write("ledger_fee_total", money(r.LedgerFeeCents))
	write("matches_ledger", strconv.FormatBool(r.Matches()))
	w.Flush()
	return b.Bytes()
}

// money writes cents as dollars with two decimals: "20.00", "-20.00".
func money(c int64) string {
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	return fmt.Sprintf("%s%d.%02d", sign, c/100, c%100)
}

// ReportEvery is how often the server looks for daily reports to send.
const ReportEvery = 10 * time.Minute

// SendReports mails yesterday's report (on each agency's clock) to every agency
// that named a finance address and was not sent it yet; each report is sent once
// (its row and its mail are one transaction). It returns how many it queued.
func (s *Service) SendReports(ctx context.Context) (int, error) {
	rows, err := s.db.Read().QueryContext(ctx, "SELECT agency_id, finance_email FROM deposit_policies WHERE finance_email <> ''")
	if err != nil {
		return 0, fmt.Errorf("deposits: reports: %w", err)
	}
	type due struct{ agency, email string }
	var list []due
	for rows.Next() {
		var d due
		if err := rows.Scan(&d.agency, &d.email); err != nil {
			rows.Close()
			return 0, err
		}
		list = append(list, d)
	}
	rows.Close()
	sent := 0
	for _, d := range list {
		loc, err := s.zone(ctx, d.agency)
		if err != nil {
			return sent, err
		}
		day := s.now().In(loc).AddDate(0, 0, -1).Format(time.DateOnly)
		r, err := s.report(ctx, d.agency, day)
		if err != nil {
			return sent, err
		}
		err = s.db.InTx(ctx, func(tx *sql.Tx) error {
			res, err := s.db.TxExec(ctx, tx, "INSERT INTO deposit_reports (agency_id, day, sent_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
				d.agency, day, s.now().UTC())
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return errSentAlready
			}
			return kmail.Enqueue(ctx, s.db, tx, kmail.Message{To: d.email, Template: "deposit_report", Locale: "en",
				Data: map[string]string{"Agency": r.Agency, "Day": day, "Posted": strconv.Itoa(r.Posted), "Reversed": strconv.Itoa(r.Reversed),
					"Trust": ledger.Dollars(r.TrustCents), "Fees": ledger.Dollars(r.FeeCents), "Matches": strconv.FormatBool(r.Matches())},
				Attachments: []kmail.Attachment{{Name: "deposits-" + day + ".csv", ContentType: "text/csv; charset=utf-8", Body: string(r.CSV())}}})
		})
		if errors.Is(err, errSentAlready) {
			continue
		}
		if err != nil {
			return sent, err
		}
		sent++
	}
	if sent > 0 {
		s.wake()
	}
	return sent, nil
}

var errSentAlready = errors.New("deposits: report sent already")
