// Package facility owns the people and places of corrections: agencies (a state
// department of corrections or a county sheriff) and their policies, facilities,
// staff roles and what each staff member may see. Staff credentials belong to
// internal/identity; every staff action is written to internal/audit in the same
// transaction.
package facility

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/problem"
	"github.com/kinlink/kinlink/internal/textsafe"

	"github.com/kinlink/kinlink/internal/audit"
	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/identity"
	"github.com/kinlink/kinlink/internal/throttle"
)

// Refusals, each with its stable code.
var (
	ErrNotFound  = problem.Declare(problem.NotFound, "not_found", "facility: not found")
	ErrForbidden = problem.Declare(problem.Forbidden, "forbidden", "facility: not allowed")

	errInvalid = problem.Declare(problem.Invalid, "invalid_request", "facility: invalid request")
)

// ValidationError lists what is wrong with a request, field by field.
type ValidationError struct{ Fields map[string]string }

func (v *ValidationError) Error() string { return fmt.Sprintf("facility: invalid: %v", v.Fields) }

// Problem is the refusal, naming the fields.
func (v *ValidationError) Problem() *problem.Error { return errInvalid.WithFields(v.Fields) }

func (v *ValidationError) add(field, code string) {
	if v.Fields == nil {
		v.Fields = map[string]string{}
	}
	v.Fields[field] = code
}

func (v *ValidationError) orNil() error {
	if len(v.Fields) == 0 {
		return nil
	}
	return v
}

// Agency is a department of corrections or a sheriff's office, with its policies.
type Agency struct {
	ID, Code, Name, State  string
	StampPriceCents        int
	MessageMaxChars        int
	VideoGramSeconds       int
	MessageRetentionDays   int
	RecordingRetentionDays int
	ApprovalForMessages    bool
	ApprovalForVisits      bool
	// VideoKbps caps the video a side of a visit sends; 0 leaves it to the server.
	VideoKbps int
	CreatedAt time.Time
}

// Facility is a prison or a jail of an agency.
type Facility struct {
	ID, AgencyID, Code, Name string
	Kind                     string // prison or jail
	TimeZone                 string
	Address                  string
	Population               int
}

// Roles of staff.
const (
	AgencyAdmin       = "agency_admin"
	FacilityAdmin     = "facility_admin"
	MailReviewer      = "mail_reviewer"
	VisitationOfficer = "visitation_officer"
	Investigator      = "investigator"
	// Finance holds, releases and rejects deposits, of one facility or of the
	// whole agency; the agency-wide office also reads the trust feed and reports.
	Finance = "finance"
)

// roles lists every role; the agency-wide ones first.
var roles = []string{AgencyAdmin, Investigator, Finance, FacilityAdmin, MailReviewer, VisitationOfficer}

// Roles lists the staff roles, in the order the portal lists them; the list is a copy, so changing it changes nothing.
func Roles() []string { return slices.Clone(roles) }

// agencyWide reports whether a role covers every facility of the agency.
func agencyWide(role string) bool {
	return role == AgencyAdmin || role == Investigator
}

// eitherScope reports whether a role may cover either every facility of the
// agency or one: an agency's finance office, or a facility's.
func eitherScope(role string) bool { return role == Finance }

// Service is the facility side's use cases.
type Service struct {
	db       *database.DB
	id       *identity.Service
	log      *slog.Logger
	throttle *throttle.Throttle

	kioskIdle time.Duration // see KioskIdle

	dummyOnce sync.Once
	dummy     string // a PIN hash for unknown residents
}

// NewService returns the service.
func NewService(db *database.DB, id *identity.Service, log *slog.Logger) *Service {
	return &Service{db: db, id: id, log: log, throttle: throttle.New(db), kioskIdle: DefaultKioskIdle}
}

// Actor is who does something: a staff member, or the operator at the command line.
type Actor struct {
	AccountID string // empty for the operator
}

// Operator is the person running kinlink's command line.
var Operator = Actor{}

func (a Actor) String() string {
	if a.AccountID == "" {
		return "operator"
	}
	return "staff:" + a.AccountID
}

var codePattern = regexp.MustCompile(`^[A-Z0-9][A-Z0-9_-]{1,15}$`)

// usStates are the postal codes of the states, DC and the territories with
// correctional agencies.
var usStates = strings.Fields(`AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY
	NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC PR GU VI AS MP`)

// AgencyInput is what creates an agency; policies start at Kinlink's defaults.
type AgencyInput struct{ Code, Name, State string }

// CreateAgency creates an agency. Only the operator does this.
func (s *Service) CreateAgency(ctx context.Context, by Actor, in AgencyInput) (Agency, error) {
	in.Code, in.State, in.Name = strings.ToUpper(strings.TrimSpace(in.Code)), strings.ToUpper(strings.TrimSpace(in.State)), strings.TrimSpace(in.Name)
	var v ValidationError
	if !codePattern.MatchString(in.Code) {
		v.add("code", "invalid")
	}
	if in.Name == "" || len(in.Name) > 200 {
		v.add("name", "required")
	} else if textsafe.HasHidden(in.Name) {
		v.add("name", "hidden_characters")
	}
	if !slices.Contains(usStates, in.State) {
		v.add("state", "invalid")
	}
	if err := v.orNil(); err != nil {
		return Agency{}, err
	}
	a := Agency{ID: ids.New(), Code: in.Code, Name: in.Name, State: in.State}
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO agencies (id, code, name, state, created_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (code) DO NOTHING`, a.ID, a.Code, a.Name, a.State, time.Now().UTC())
		if err != nil {
			return fmt.Errorf("facility: create agency: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return &ValidationError{Fields: map[string]string{"code": "taken"}}
		}
		return audit.Record(ctx, s.db, tx, audit.Entry{Actor: by.String(), Action: "agency.create", AgencyID: a.ID, Subject: a.Code, Detail: a.Name})
	})
	if err != nil {
		return Agency{}, err
	}
	return s.AgencyByCode(ctx, a.Code)
}

const agencyColumns = `id, code, name, state, stamp_price_cents, message_max_chars, videogram_seconds, message_retention_days,
	recording_retention_days, approval_for_messages, approval_for_visits, video_kbps, created_at`

func scanAgency(row interface{ Scan(...any) error }) (Agency, error) {
	var a Agency
	err := row.Scan(&a.ID, &a.Code, &a.Name, &a.State, &a.StampPriceCents, &a.MessageMaxChars, &a.VideoGramSeconds,
		&a.MessageRetentionDays, &a.RecordingRetentionDays, &a.ApprovalForMessages, &a.ApprovalForVisits, &a.VideoKbps, &a.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return a, ErrNotFound
	}
	if err != nil {
		return a, fmt.Errorf("facility: read agency: %w", err)
	}
	return a, nil
}

// AgencyByCode returns an agency by its short code.
func (s *Service) AgencyByCode(ctx context.Context, code string) (Agency, error) {
	return scanAgency(s.db.Read().QueryRowContext(ctx, "SELECT "+agencyColumns+" FROM agencies WHERE code = $1", strings.ToUpper(strings.TrimSpace(code))))
}

// Agency returns an agency by id.
func (s *Service) Agency(ctx context.Context, id string) (Agency, error) {
	return scanAgency(s.db.Read().QueryRowContext(ctx, "SELECT "+agencyColumns+" FROM agencies WHERE id = $1", id))
}

// Agencies lists every agency, by state and name.
func (s *Service) Agencies(ctx context.Context) ([]Agency, error) {
	rows, err := s.db.Read().QueryContext(ctx, "SELECT "+agencyColumns+" FROM agencies ORDER BY state, name")
	if err != nil {
		return nil, fmt.Errorf("facility: agencies: %w", err)
	}
	defer rows.Close()
	var out []Agency
	for rows.Next() {
		a, err := scanAgency(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// FacilityInput is what creates a facility.
type FacilityInput struct {
	Code, Name, Kind, TimeZone, Address string
	Population                          int
}

// CreateFacility adds a facility to an agency. The operator and the agency's
// administrators may.
func (s *Service) CreateFacility(ctx context.Context, by Actor, agencyID string, in FacilityInput) (Facility, error) {
	if err := s.require(ctx, by, agencyID, "", AgencyAdmin); err != nil {
		return Facility{}, err
	}
	in.Code, in.Name, in.Kind, in.TimeZone, in.Address = strings.ToUpper(strings.TrimSpace(in.Code)), strings.TrimSpace(in.Name),
		strings.ToLower(strings.TrimSpace(in.Kind)), strings.TrimSpace(in.TimeZone), strings.TrimSpace(in.Address)
	var v ValidationError
	if !codePattern.MatchString(in.Code) {
		v.add("code", "invalid")
	}
	if in.Name == "" || len(in.Name) > 200 {
		v.add("name", "required")
	} else if textsafe.HasHidden(in.Name) {
		v.add("name", "hidden_characters")
	}
	if in.Kind != "prison" && in.Kind != "jail" {
		v.add("type", "invalid")
	}
	if _, err := time.LoadLocation(in.TimeZone); err != nil || in.TimeZone == "" || !strings.Contains(in.TimeZone, "/") {
		v.add("timezone", "invalid")
	}
	if in.Population < 0 || in.Population > 100000 {
		v.add("population", "invalid")
	}
	if err := v.orNil(); err != nil {
		return Facility{}, err
	}
	f := Facility{ID: ids.New(), AgencyID: agencyID, Code: in.Code, Name: in.Name, Kind: in.Kind, TimeZone: in.TimeZone, Address: in.Address, Population: in.Population}
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO facilities (id, agency_id, code, name, kind, timezone, address, population, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (agency_id, code) DO NOTHING`,
			f.ID, agencyID, f.Code, f.Name, f.Kind, f.TimeZone, f.Address, f.Population, time.Now().UTC())
		if err != nil {
			return fmt.Errorf("facility: create facility: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return &ValidationError{Fields: map[string]string{"code": "taken"}}
		}
		return audit.Record(ctx, s.db, tx, audit.Entry{Actor: by.String(), Action: "facility.create", AgencyID: agencyID, FacilityID: f.ID,
			Subject: f.Code, Detail: f.Name})
	})
	return f, err
}

const facilityColumns = "id, agency_id, code, name, kind, timezone, address, population"

// Facilities lists the facilities of an agency by name.
func (s *Service) Facilities(ctx context.Context, agencyID string) ([]Facility, error) {
	rows, err := s.db.Read().QueryContext(ctx, "SELECT "+facilityColumns+" FROM facilities WHERE agency_id = $1 ORDER BY name", agencyID)
	if err != nil {
		return nil, fmt.Errorf("facility: facilities: %w", err)
	}
	defer rows.Close()
	var out []Facility
	for rows.Next() {
		var f Facility
		if err := rows.Scan(&f.ID, &f.AgencyID, &f.Code, &f.Name, &f.Kind, &f.TimeZone, &f.Address, &f.Population); err != nil {
			return nil, fmt.Errorf("facility: facilities: %w", err)
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// FacilityByCode returns a facility of an agency by its code.
func (s *Service) FacilityByCode(ctx context.Context, agencyID, code string) (Facility, error) {
	var f Facility
	err := s.db.Read().QueryRowContext(ctx, "SELECT "+facilityColumns+" FROM facilities WHERE agency_id = $1 AND code = $2",
		agencyID, strings.ToUpper(strings.TrimSpace(code))).
		Scan(&f.ID, &f.AgencyID, &f.Code, &f.Name, &f.Kind, &f.TimeZone, &f.Address, &f.Population)
	if errors.Is(err, sql.ErrNoRows) {
		return f, ErrNotFound
	}
	return f, err
}

// Facility returns a facility by id, for the packages that keep things of a
// facility (visit schedules) and need its agency or its time zone.
func (s *Service) Facility(ctx context.Context, id string) (Facility, error) {
	var f Facility
	if !ids.Valid(id) {
		return f, ErrNotFound
	}
	err := s.db.Read().QueryRowContext(ctx, "SELECT "+facilityColumns+" FROM facilities WHERE id = $1", id).
		Scan(&f.ID, &f.AgencyID, &f.Code, &f.Name, &f.Kind, &f.TimeZone, &f.Address, &f.Population)
	if errors.Is(err, sql.ErrNoRows) {
		return f, ErrNotFound
	}
	return f, err
}

// Policies are what an agency decides for its facilities.
type Policies struct {
	StampPriceCents        int
	MessageMaxChars        int
	VideoGramSeconds       int
	MessageRetentionDays   int
	RecordingRetentionDays int
	ApprovalForMessages    bool
	ApprovalForVisits      bool
	// VideoKbps caps the video a side of a visit sends, 100 to 8000 kbit/s; 0
	// leaves it to the server's setting.
	VideoKbps int
}

// UpdatePolicies sets an agency's policies; agency admins may.
func (s *Service) UpdatePolicies(ctx context.Context, by Actor, agencyID string, p Policies) error {
	if err := s.require(ctx, by, agencyID, "", AgencyAdmin); err != nil {
		return err
	}
	var v ValidationError
	if p.StampPriceCents < 0 || p.StampPriceCents > 500 {
		v.add("stamp_price_cents", "range")
	}
	if p.MessageMaxChars < 500 || p.MessageMaxChars > 20000 {
		v.add("message_max_chars", "range")
	}
	if p.VideoGramSeconds < 10 || p.VideoGramSeconds > 120 {
		v.add("videogram_seconds", "range")
	}
	if p.MessageRetentionDays < 30 || p.MessageRetentionDays > 36500 {
		v.add("message_retention_days", "range")
	}
	if p.RecordingRetentionDays < 30 || p.RecordingRetentionDays > 36500 {
		v.add("recording_retention_days", "range")
	}
	if p.VideoKbps != 0 && (p.VideoKbps < 100 || p.VideoKbps > 8000) {
		v.add("video_kbps", "range")
	}
	if err := v.orNil(); err != nil {
		return err
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE agencies SET stamp_price_cents = $2, message_max_chars = $3, videogram_seconds = $4,
			message_retention_days = $5, recording_retention_days = $6, approval_for_messages = $7, approval_for_visits = $8, video_kbps = $9
			WHERE id = $1`,
			agencyID, p.StampPriceCents, p.MessageMaxChars, p.VideoGramSeconds, p.MessageRetentionDays, p.RecordingRetentionDays,
			p.ApprovalForMessages, p.ApprovalForVisits, p.VideoKbps)
		if err != nil {
			return fmt.Errorf("facility: policies: %w", err)
		}
		return audit.Record(ctx, s.db, tx, audit.Entry{Actor: by.String(), Action: "agency.policies", AgencyID: agencyID,
			Detail: fmt.Sprintf("stamp %d¢, %d chars, videogram %ds, retention %d/%d days, approval messages %t visits %t, video %d kbit/s",
				p.StampPriceCents, p.MessageMaxChars, p.VideoGramSeconds, p.MessageRetentionDays, p.RecordingRetentionDays,
				p.ApprovalForMessages, p.ApprovalForVisits, p.VideoKbps)})
	})
}
