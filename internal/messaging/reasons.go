package messaging

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kinlink/kinlink/internal/audit"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/problem"
)

// The reasons a reviewer picks from when rejecting a message: the built-in ones,
// which the program words in every language, and the agency's own. An agency admin
// adds reasons and retires the ones the agency does not use; nothing is deleted or
// reworded, so a family always reads a reason as it was given.

// builtInReasons are the reasons every agency starts with (i18n keys
// "reject.<code>"), in the order reviewers see them.
var builtInReasons = []string{"threat", "contraband", "explicit", "escape_or_crime", "coded_language", "other"}

// BuiltInReasons lists the reasons every agency starts with; the list is a copy, so changing it changes nothing.
func BuiltInReasons() []string { return slices.Clone(builtInReasons) }

// MaxReasonChars bounds the wording of an agency's own reason.
const MaxReasonChars = 120

// Errors of the reason list.
var (
	ErrReasonWording = problem.Declare(problem.Invalid, "invalid_request", "messaging: a reason needs English wording of at most 120 characters, in plain text").
				On("reason_english", "reason_wording")
	ErrReasonDuplicate = problem.Declare(problem.Conflict, "reason_duplicate", "messaging: the agency already has this reason").
				Say("review.reason_duplicate")
	ErrLastReason = problem.Declare(problem.Conflict, "last_reason", "messaging: reviewers need at least one reason to reject with").
			Say("review.reason_last")
)

// Wording is an agency's own words for a reason. Built-in reasons have none: the
// program translates them.
type Wording struct {
	English, Spanish string
}

// In returns the wording in a language, English when there is none in it, "" for
// a built-in reason.
func (w Wording) In(lang string) string {
	if lang == "es" && w.Spanish != "" {
		return w.Spanish
	}
	return w.English
}

// RejectReason is one reason of an agency's list.
type RejectReason struct {
	Code    string
	Wording Wording // empty for a built-in reason
	Retired bool
}

// BuiltIn reports whether the program words the reason.
func (r RejectReason) BuiltIn() bool { return slices.Contains(builtInReasons, r.Code) }

// Reasons returns an agency's reasons: the built-in ones first, then the agency's
// own in the order they were added. Retired ones are included only when asked for.
func (s *Service) Reasons(ctx context.Context, agencyID string, withRetired bool) ([]RejectReason, error) {
	return reasons(ctx, s.db.Read(), agencyID, withRetired)
}

// reasons reads an agency's reasons through q: the readers, or a transaction that
// is changing them.
func reasons(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, agencyID string, withRetired bool) ([]RejectReason, error) {
	rows, err := q.QueryContext(ctx, "SELECT code, english, spanish, retired FROM reject_reasons WHERE agency_id = $1 ORDER BY created_at, code", agencyID)
	if err != nil {
		return nil, fmt.Errorf("messaging: reasons: %w", err)
	}
	defer rows.Close()
	retired := map[string]bool{}
	var own []RejectReason
	for rows.Next() {
		var r RejectReason
		if err := rows.Scan(&r.Code, &r.Wording.English, &r.Wording.Spanish, &r.Retired); err != nil {
			return nil, err
		}
		if r.BuiltIn() {
			retired[r.Code] = r.Retired
		} else {
			own = append(own, r)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []RejectReason
	for _, code := range builtInReasons {
		out = append(out, RejectReason{Code: code, Retired: retired[code]})
	}
	out = append(out, own...)
	if !withRetired {
		out = slices.DeleteFunc(out, func(r RejectReason) bool { return r.Retired })
	}
	return out, nil
}

// AddReason adds an agency's own reason; agency admins may. English wording is
// needed (the fallback for every family), Spanish is welcome. builtIn are the words
// of the built-in reasons in every language (the program's translations, which this
// package does not hold): a reason worded as one of them would list it twice.
func (s *Service) AddReason(ctx context.Context, by facility.Access, english, spanish string, builtIn ...string) (RejectReason, error) {
	if !by.Has(facility.AgencyAdmin, "") {
		return RejectReason{}, facility.ErrForbidden
	}
	w := Wording{English: strings.Join(strings.Fields(english), " "), Spanish: strings.Join(strings.Fields(spanish), " ")}
	for _, text := range []string{w.English, w.Spanish} {
		if len([]rune(text)) > MaxReasonChars || !cleanLine(text) {
			return RejectReason{}, ErrReasonWording
		}
	}
	if w.English == "" {
		return RejectReason{}, ErrReasonWording
	}
	folded := foldWords(w.English)
	for _, words := range builtIn {
		if b := foldWords(words); b == folded || (w.Spanish != "" && b == foldWords(w.Spanish)) {
			return RejectReason{}, ErrReasonDuplicate
		}
	}
	r := RejectReason{Code: ids.New(), Wording: w}
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.lockReasons(ctx, tx, by.AgencyID); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM reject_reasons WHERE agency_id = $1 AND folded = $2 AND NOT retired", by.AgencyID, folded).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return ErrReasonDuplicate
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO reject_reasons (agency_id, code, english, spanish, folded, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
			by.AgencyID, r.Code, w.English, w.Spanish, folded, time.Now().UTC()); err != nil {
			return fmt.Errorf("messaging: add reason: %w", err)
		}
		return audit.Record(ctx, s.db, tx, audit.Entry{Actor: "staff:" + by.AccountID, Action: "review.reason_added", AgencyID: by.AgencyID,
			Subject: "reason:" + r.Code, Detail: w.English})
	})
	return r, err
}

// RetireReason takes a reason off the list reviewers pick from (retire) or puts it
// back; agency admins may. Messages rejected with it keep it.
func (s *Service) RetireReason(ctx context.Context, by facility.Access, code string, retire bool) error {
	if !by.Has(facility.AgencyAdmin, "") {
		return facility.ErrForbidden
	}
	builtIn := slices.Contains(builtInReasons, code)
	if !builtIn && !ids.Valid(code) {
		return ErrNotFound
	}
	action := "review.reason_retired"
	if !retire {
		action = "review.reason_restored"
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.lockReasons(ctx, tx, by.AgencyID); err != nil {
			return err
		}
		var res sql.Result
		var err error
		if builtIn {
			res, err = tx.ExecContext(ctx, `INSERT INTO reject_reasons (agency_id, code, retired, created_at) VALUES ($1, $2, $3, $4)
				ON CONFLICT (agency_id, code) DO UPDATE SET retired = excluded.retired`, by.AgencyID, code, retire, time.Now().UTC())
		} else {
			res, err = tx.ExecContext(ctx, "UPDATE reject_reasons SET retired = $3 WHERE agency_id = $1 AND code = $2", by.AgencyID, code, retire)
		}
		if err != nil {
			return fmt.Errorf("messaging: retire reason: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		if retire {
			if left, err := reasons(ctx, tx, by.AgencyID, false); err != nil {
				return err
			} else if len(left) == 0 {
				return ErrLastReason
			}
		} else if !builtIn {
			// Putting back a reason worded like one added since would list it twice.
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM reject_reasons o JOIN reject_reasons r ON r.agency_id = o.agency_id AND r.folded = o.folded
				WHERE r.agency_id = $1 AND r.code = $2 AND o.code <> r.code AND NOT o.retired`, by.AgencyID, code).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return ErrReasonDuplicate
			}
		}
		return audit.Record(ctx, s.db, tx, audit.Entry{Actor: "staff:" + by.AccountID, Action: action, AgencyID: by.AgencyID, Subject: "reason:" + code})
	})
}

// lockReasons makes changes of one agency's reasons take turns: on PostgreSQL two
// admins retiring the last two reasons at once would each still see one left. (On
// SQLite every write transaction already takes turns.)
func (s *Service) lockReasons(ctx context.Context, tx *sql.Tx, agencyID string) error {
	var id string
	return tx.QueryRowContext(ctx, "SELECT id FROM agencies WHERE id = $1"+s.db.ForUpdate(), agencyID).Scan(&id)
}

// usableReason reports whether a reviewer of the agency may reject with code now.
func (s *Service) usableReason(ctx context.Context, agencyID, code string) (RejectReason, bool, error) {
	reasons, err := s.Reasons(ctx, agencyID, false)
	if err != nil {
		return RejectReason{}, false, err
	}
	for _, r := range reasons {
		if r.Code == code {
			return r, true, nil
		}
	}
	return RejectReason{}, false, nil
}

// attachReasons fills in the agency's wording of the rejected messages whose reason
// is the agency's own, with one query.
func (s *Service) attachReasons(ctx context.Context, agencyID string, msgs []Message) error {
	var codes []any
	marks := []string{}
	for _, m := range msgs {
		if m.State == Rejected && m.Reason != "" && !slices.Contains(builtInReasons, m.Reason) {
			codes = append(codes, m.Reason)
			marks = append(marks, fmt.Sprintf("$%d", len(codes)+1))
		}
	}
	if len(codes) == 0 {
		return nil
	}
	rows, err := s.db.Read().QueryContext(ctx, "SELECT code, english, spanish FROM reject_reasons WHERE agency_id = $1 AND code IN ("+strings.Join(marks, ", ")+")",
		append([]any{agencyID}, codes...)...)
	if err != nil {
		return fmt.Errorf("messaging: reason wording: %w", err)
	}
	defer rows.Close()
	words := map[string]Wording{}
	for rows.Next() {
		var code string
		var w Wording
		if err := rows.Scan(&code, &w.English, &w.Spanish); err != nil {
			return err
		}
		words[code] = w
	}
	for i := range msgs {
		if w, ok := words[msgs[i].Reason]; ok && msgs[i].State == Rejected {
			msgs[i].ReasonWording = w
		}
	}
	return rows.Err()
}
