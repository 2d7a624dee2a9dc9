// Package contacts owns the links between family accounts and residents ("my
// people") and their approval: where an agency requires it, a facility administrator
// approves or denies each contact with a reason, and the family sees which.
package contacts

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/problem"
	"github.com/kinlink/kinlink/internal/textsafe"

	"github.com/kinlink/kinlink/internal/audit"
	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/facility"
)

// States of a contact.
const (
	Pending  = "pending"
	Approved = "approved"
	Denied   = "denied"
)

// Refusals, each with its stable code.
var (
	ErrNotFound = problem.Declare(problem.NotFound, "not_found", "contacts: not found")
	// ErrUnknownResident is a request to add someone who is not on a roster.
	ErrUnknownResident = problem.Declare(problem.Invalid, "invalid_request", "contacts: no such resident").
				On("resident", "unknown").Say("people.unknown")
	ErrNotActive = problem.Declare(problem.Invalid, "invalid_request", "contacts: the resident is not at a facility any more").
			On("resident", "unknown").Say("people.not_active")
	ErrNeedReason = problem.Declare(problem.Invalid, "invalid_request", "contacts: a denial needs a reason").
			On("reason", "required").Say("portal.contacts.need_reason")
	ErrLongReason = problem.Declare(problem.Invalid, "invalid_request", "contacts: the reason is longer than 500 characters").
			On("reason", "too_long").Say("portal.contacts.long_reason")
	ErrBadReason = problem.Declare(problem.Invalid, "invalid_request", "contacts: the reason holds control or invisible characters").
			On("reason", "invalid").Say("portal.contacts.bad_reason")
	ErrDecided = problem.Declare(problem.Conflict, "already_decided", "contacts: the request was already decided").
			Say("portal.contacts.already_decided")
)

// Contact is a family account's link to a resident.
type Contact struct {
	ID        string
	AccountID string
	Status    string
	Reason    string
	CreatedAt time.Time
	Resident  facility.Resident
}

// Service is the contacts use cases.
type Service struct {
	db  *database.DB
	fac *facility.Service
}

// NewService returns the service.
func NewService(db *database.DB, fac *facility.Service) *Service { return &Service{db: db, fac: fac} }

// Request adds a resident to a family's people. Where the agency needs approval (for
// messages or for visits) the contact waits for a facility administrator; otherwise it
// is approved at once. Asking again returns the existing contact.
func (s *Service) Request(ctx context.Context, accountID, residentID string) (Contact, error) {
	r, err := s.fac.Resident(ctx, residentID)
	if errors.Is(err, facility.ErrNotFound) {
		return Contact{}, ErrUnknownResident
	}
	if err != nil {
		return Contact{}, err
	}
	if existing, err := s.byResident(ctx, accountID, residentID); err == nil {
		return existing, nil
	} else if !errors.Is(err, ErrNotFound) {
		return Contact{}, err
	}
	if r.Status != "active" {
		return Contact{}, ErrNotActive
	}
	agency, err := s.fac.Agency(ctx, r.Agency.ID)
	if err != nil {
		return Contact{}, err
	}
	status := Approved
	if agency.ApprovalForMessages || agency.ApprovalForVisits {
		status = Pending
	}
	now := time.Now().UTC()
	_, err = s.db.Write().ExecContext(ctx, `INSERT INTO contacts (id, account_id, resident_id, status, created_at)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id, resident_id) DO NOTHING`, ids.New(), accountID, residentID, status, now)
	if err != nil {
		return Contact{}, fmt.Errorf("contacts: request: %w", err)
	}
	return s.byResident(ctx, accountID, residentID)
}

const contactColumns = "c.id, c.account_id, c.status, c.reason, c.created_at, c.resident_id"

func (s *Service) scan(ctx context.Context, rows *sql.Rows) ([]Contact, error) {
	defer rows.Close()
	var out []Contact
	var residentIDs []string
	for rows.Next() {
		var c Contact
		var rid string
		if err := rows.Scan(&c.ID, &c.AccountID, &c.Status, &c.Reason, &c.CreatedAt, &rid); err != nil {
			return nil, fmt.Errorf("contacts: read: %w", err)
		}
		out = append(out, c)
		residentIDs = append(residentIDs, rid)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	for i, rid := range residentIDs {
		r, err := s.fac.Resident(ctx, rid)
		if err != nil {
			return nil, err
		}
		out[i].Resident = r
	}
	return out, nil
}

func (s *Service) byResident(ctx context.Context, accountID, residentID string) (Contact, error) {
	rows, err := s.db.Read().QueryContext(ctx, "SELECT "+contactColumns+" FROM contacts c WHERE c.account_id = $1 AND c.resident_id = $2", accountID, residentID)
	if err != nil {
		return Contact{}, fmt.Errorf("contacts: read: %w", err)
	}
	list, err := s.scan(ctx, rows)
	if err != nil {
		return Contact{}, err
	}
	if len(list) == 0 {
		return Contact{}, ErrNotFound
	}
	return list[0], nil
}

// OfAccount lists a family's people, newest first.
func (s *Service) OfAccount(ctx context.Context, accountID string) ([]Contact, error) {
	rows, err := s.db.Read().QueryContext(ctx, "SELECT "+contactColumns+" FROM contacts c WHERE c.account_id = $1 ORDER BY c.created_at DESC, c.id", accountID)
	if err != nil {
		return nil, fmt.Errorf("contacts: list: %w", err)
	}
	return s.scan(ctx, rows)
}

// Get returns one of a family's contacts; another family's contact is ErrNotFound.
func (s *Service) Get(ctx context.Context, accountID, contactID string) (Contact, error) {
	rows, err := s.db.Query(ctx, "SELECT "+contactColumns+" FROM contacts c WHERE c.id = $1 AND c.account_id = $2", contactID, accountID)
	if err != nil {
		return Contact{}, fmt.Errorf("contacts: get: %w", err)
	}
	list, err := s.scan(ctx, rows)
	if err != nil {
		return Contact{}, err
	}
	if len(list) == 0 {
		return Contact{}, ErrNotFound
	}
	return list[0], nil
}

// PendingRequest is a contact waiting for a facility's decision, as staff see it.
type PendingRequest struct {
	Contact
	FamilyName  string
	FamilyEmail string
}

// Pending lists the contact requests waiting in the facilities a staff member
// administers, oldest first.
func (s *Service) Pending(ctx context.Context, access facility.Access) ([]PendingRequest, error) {
	var admin []string // the facilities where the staff member decides contacts
	if !access.Has(facility.AgencyAdmin, "") {
		for _, g := range access.Grants {
			if g.Role == facility.FacilityAdmin {
				admin = append(admin, g.FacilityID)
			}
		}
		if admin == nil {
			return nil, nil
		}
	}
	where := ""
	args := []any{access.AgencyID}
	for i, id := range admin {
		if i == 0 {
			where = " AND r.facility_id IN ("
		} else {
			where += ", "
		}
		args = append(args, id)
		where += fmt.Sprintf("$%d", len(args))
	}
	if where != "" {
		where += ")"
	}
	rows, err := s.db.Read().QueryContext(ctx, `SELECT c.id, c.account_id, c.status, c.reason, c.created_at, c.resident_id, a.full_name, a.email, r.facility_id
		FROM contacts c JOIN residents r ON r.id = c.resident_id JOIN accounts a ON a.id = c.account_id
		WHERE c.status = 'pending' AND r.agency_id = $1`+where+` ORDER BY c.created_at, c.id LIMIT 500`, args...)
	if err != nil {
		return nil, fmt.Errorf("contacts: pending: %w", err)
	}
	defer rows.Close()
	var out []PendingRequest
	for rows.Next() {
		var p PendingRequest
		var rid, facilityID string
		if err := rows.Scan(&p.ID, &p.AccountID, &p.Status, &p.Reason, &p.CreatedAt, &rid, &p.FamilyName, &p.FamilyEmail, &facilityID); err != nil {
			return nil, fmt.Errorf("contacts: pending: %w", err)
		}
		p.Resident.ID = rid
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		r, err := s.fac.Resident(ctx, out[i].Resident.ID)
		if err != nil {
			return nil, err
		}
		out[i].Resident = r
	}
	// The list shows families' names and emails: the read is audited.
	err = audit.RecordNow(ctx, s.db, audit.Entry{Actor: "staff:" + access.AccountID, Action: "contacts.view", AgencyID: access.AgencyID,
		Detail: fmt.Sprintf("%d pending", len(out))})
	return out, err
}

// Decide approves or denies a contact; a denial needs a reason the family will see.
// Only an administrator of the resident's facility may, and the decision is audited.
func (s *Service) Decide(ctx context.Context, access facility.Access, contactID string, approve bool, reason string) error {
	if !ids.Valid(contactID) {
		return ErrNotFound
	}
	reason = strings.TrimSpace(reason)
	if !utf8.ValidString(reason) || textsafe.HasHidden(reason) {
		return ErrBadReason
	}
	if !approve && reason == "" {
		return ErrNeedReason
	}
	if utf8.RuneCountInString(reason) > 500 {
		return ErrLongReason
	}
	var residentID, agencyID, facilityID string
	err := s.db.Read().QueryRowContext(ctx, `SELECT r.id, r.agency_id, r.facility_id FROM contacts c JOIN residents r ON r.id = c.resident_id
		WHERE c.id = $1`, contactID).Scan(&residentID, &agencyID, &facilityID)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("contacts: decide: %w", err)
	}
	if agencyID != access.AgencyID || !access.Has(facility.FacilityAdmin, facilityID) {
		return ErrNotFound // another agency's contact does not exist for this staff member
	}
	status := Denied
	if approve {
		status = Approved
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		// Only a waiting request is decided: a form left open, sent twice, or sent by a
		// second officer meanwhile must not turn a decision around.
		res, err := tx.ExecContext(ctx, "UPDATE contacts SET status = $2, reason = $3, decided_by = $4, decided_at = $5 WHERE id = $1 AND status = $6",
			contactID, status, reason, access.AccountID, time.Now().UTC(), Pending)
		if err != nil {
			return fmt.Errorf("contacts: decide: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrDecided
		}
		return audit.Record(ctx, s.db, tx, audit.Entry{Actor: "staff:" + access.AccountID, Action: "contact." + status,
			AgencyID: agencyID, FacilityID: facilityID, ResidentID: residentID, Subject: "contact:" + contactID, Detail: reason})
	})
}

// Agencies are the agencies of a family's people, each once, with their policies
// (what a stamp costs there): what the family pays under.
func (s *Service) Agencies(ctx context.Context, accountID string) ([]facility.Agency, error) {
	people, err := s.OfAccount(ctx, accountID)
	if err != nil {
		return nil, err
	}
	var out []facility.Agency
	seen := map[string]bool{}
	for _, c := range people {
		if seen[c.Resident.Agency.ID] {
			continue
		}
		seen[c.Resident.Agency.ID] = true
		ag, err := s.fac.Agency(ctx, c.Resident.Agency.ID)
		if err != nil {
			return nil, fmt.Errorf("contacts: agencies: %w", err)
		}
		out = append(out, ag)
	}
	return out, nil
}

// Visitor is the family member of a contact, as staff see them.
type Visitor struct {
	Name, Email string
}

// Visitors names the family members of contacts of an agency's residents, by
// contact id, for staff lists such as visit requests; other contacts are left out.
// The caller audits the read.
func (s *Service) Visitors(ctx context.Context, agencyID string, contactIDs []string) (map[string]Visitor, error) {
	out := map[string]Visitor{}
	var valid []any
	for _, id := range contactIDs {
		if ids.Valid(id) && !slices.Contains(valid, any(id)) {
			valid = append(valid, id)
		}
	}
	if len(valid) == 0 {
		return out, nil
	}
	rows, err := s.db.Read().QueryContext(ctx, `SELECT c.id, a.full_name, a.email FROM contacts c JOIN accounts a ON a.id = c.account_id
		JOIN residents r ON r.id = c.resident_id WHERE r.agency_id = $1 AND c.id IN (`+database.Placeholders(2, len(valid))+")",
		append([]any{agencyID}, valid...)...)
	if err != nil {
		return nil, fmt.Errorf("contacts: visitors: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var v Visitor
		if err := rows.Scan(&id, &v.Name, &v.Email); err != nil {
			return nil, fmt.Errorf("contacts: visitors: %w", err)
		}
		out[id] = v
	}
	return out, rows.Err()
}
