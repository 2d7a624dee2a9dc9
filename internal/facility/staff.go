package facility

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/problem"

	"github.com/kinlink/kinlink/internal/audit"
	"github.com/kinlink/kinlink/internal/identity"
)

// Grant is one role of a staff member; FacilityID is empty for agency-wide roles.
type Grant struct {
	Role       string
	FacilityID string
}

// Access is what a staff member may see and do: one agency, and roles in it.
type Access struct {
	AccountID string
	AgencyID  string
	Grants    []Grant
}

// Has reports whether the access holds role for facilityID; agency-wide roles hold
// for every facility of the agency, and an agency admin holds every role.
func (a Access) Has(role, facilityID string) bool {
	for _, g := range a.Grants {
		if g.Role == AgencyAdmin {
			return true
		}
		if g.Role == role && (g.FacilityID == "" || facilityID == "" || g.FacilityID == facilityID) {
			return true
		}
	}
	return false
}

// FacilityIDs are the facilities the access reaches; nil means every facility of the
// agency.
func (a Access) FacilityIDs() []string {
	var ids []string
	for _, g := range a.Grants {
		if g.FacilityID == "" {
			return nil
		}
		if !slices.Contains(ids, g.FacilityID) {
			ids = append(ids, g.FacilityID)
		}
	}
	return ids
}

// Sees reports whether the access reaches a facility of its agency.
func (a Access) Sees(facilityID string) bool {
	ids := a.FacilityIDs()
	return ids == nil || slices.Contains(ids, facilityID)
}

// AccessOf returns the access of a staff account; an account with no role has none
// (ErrForbidden).
func (s *Service) AccessOf(ctx context.Context, accountID string) (Access, error) {
	rows, err := s.db.Read().QueryContext(ctx, "SELECT agency_id, role, facility_id FROM staff_roles WHERE account_id = $1 ORDER BY role", accountID)
	if err != nil {
		return Access{}, fmt.Errorf("facility: access: %w", err)
	}
	defer rows.Close()
	a := Access{AccountID: accountID}
	for rows.Next() {
		var agency string
		var g Grant
		if err := rows.Scan(&agency, &g.Role, &g.FacilityID); err != nil {
			return Access{}, fmt.Errorf("facility: access: %w", err)
		}
		a.AgencyID = agency
		a.Grants = append(a.Grants, g)
	}
	if err := rows.Err(); err != nil {
		return Access{}, err
	}
	if len(a.Grants) == 0 {
		return Access{}, ErrForbidden
	}
	return a, nil
}

// require checks that the actor holds role in the agency (and facility); the
// operator holds every role.
func (s *Service) require(ctx context.Context, by Actor, agencyID, facilityID, role string) error {
	if by == Operator {
		return nil
	}
	a, err := s.AccessOf(ctx, by.AccountID)
	if err != nil {
		return err
	}
	if a.AgencyID != agencyID || !a.Has(role, facilityID) {
		return ErrForbidden
	}
	return nil
}

// StaffInput is a new staff member.
type StaffInput struct {
	Email, FullName, Locale string
	Role                    string
	FacilityID              string // for facility roles
}

// CreateStaff creates a staff account with one role and mails it an enrolment link,
// which is also returned for the operator's command to print. Agency admins and the
// operator may.
func (s *Service) CreateStaff(ctx context.Context, by Actor, agencyID string, in StaffInput) (accountID, link string, err error) {
	if err := s.require(ctx, by, agencyID, "", AgencyAdmin); err != nil {
		return "", "", err
	}
	if err := s.checkGrant(ctx, agencyID, in.Role, in.FacilityID); err != nil {
		return "", "", err
	}
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		accountID, link, err = s.id.CreateStaff(ctx, tx, in.Email, in.FullName, in.Locale)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO staff_roles (account_id, agency_id, role, facility_id, created_at) VALUES ($1, $2, $3, $4, $5)",
			accountID, agencyID, in.Role, in.FacilityID, time.Now().UTC()); err != nil {
			return fmt.Errorf("facility: create staff: %w", err)
		}
		return audit.Record(ctx, s.db, tx, audit.Entry{Actor: by.String(), Action: "staff.create", AgencyID: agencyID, FacilityID: in.FacilityID,
			Subject: "staff:" + accountID, Detail: in.Role})
	})
	if err != nil {
		var v *identity.ValidationError
		if errors.As(err, &v) {
			return "", "", &ValidationError{Fields: v.Fields}
		}
		return "", "", err
	}
	return accountID, link, nil
}

// checkGrant validates a role and its facility.
func (s *Service) checkGrant(ctx context.Context, agencyID, role, facilityID string) error {
	var v ValidationError
	if facilityID != "" && !ids.Valid(facilityID) {
		v.add("facility", "invalid")
		return &v
	}
	switch {
	case !slices.Contains(roles, role):
		v.add("role", "invalid")
	case agencyWide(role) && facilityID != "":
		v.add("facility", "not_for_role")
	case !agencyWide(role) && !eitherScope(role) && facilityID == "":
		v.add("facility", "required")
	case facilityID != "":
		var n int
		if err := s.db.Read().QueryRowContext(ctx, "SELECT COUNT(*) FROM facilities WHERE id = $1 AND agency_id = $2", facilityID, agencyID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			v.add("facility", "invalid")
		}
	}
	return v.orNil()
}

// RecordStaffEvent writes a staff member's portal login or token change to the
// audit log inside its transaction; identity calls it.
func (s *Service) RecordStaffEvent(ctx context.Context, tx *sql.Tx, accountID, action string, c identity.Client) error {
	var agencyID string
	err := tx.QueryRowContext(ctx, "SELECT agency_id FROM staff_roles WHERE account_id = $1 LIMIT 1", accountID).Scan(&agencyID)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("facility: portal login: %w", err)
	}
	return audit.Record(ctx, s.db, tx, audit.Entry{Actor: "staff:" + accountID, Action: action, AgencyID: agencyID,
		Subject: "staff:" + accountID, Detail: "from " + c.IP})
}

// StaffMember is a staff account with its roles, for lists.
type StaffMember struct {
	AccountID, Email, FullName, Status string
	Grants                             []Grant
}

// Staff lists the staff of an agency; agency admins and investigators may.
func (s *Service) Staff(ctx context.Context, by Actor, agencyID string) ([]StaffMember, error) {
	if err := s.require(ctx, by, agencyID, "", Investigator); err != nil {
		return nil, err
	}
	rows, err := s.db.Read().QueryContext(ctx, `SELECT a.id, a.email, a.full_name, a.status, r.role, r.facility_id
		FROM staff_roles r JOIN accounts a ON a.id = r.account_id WHERE r.agency_id = $1 ORDER BY a.full_name, a.id, r.role`, agencyID)
	if err != nil {
		return nil, fmt.Errorf("facility: staff: %w", err)
	}
	defer rows.Close()
	var out []StaffMember
	for rows.Next() {
		var m StaffMember
		var g Grant
		if err := rows.Scan(&m.AccountID, &m.Email, &m.FullName, &m.Status, &g.Role, &g.FacilityID); err != nil {
			return nil, fmt.Errorf("facility: staff: %w", err)
		}
		if n := len(out); n > 0 && out[n-1].AccountID == m.AccountID {
			out[n-1].Grants = append(out[n-1].Grants, g)
			continue
		}
		m.Grants = []Grant{g}
		out = append(out, m)
	}
	return out, rows.Err()
}

// GrantRole gives a staff account a role, if it lacks it. The operator and agency
// admins may.
func (s *Service) GrantRole(ctx context.Context, by Actor, agencyID, accountID, role, facilityID string) error {
	if !ids.Valid(accountID) || (facilityID != "" && !ids.Valid(facilityID)) {
		return ErrNotFound
	}
	if err := s.require(ctx, by, agencyID, "", AgencyAdmin); err != nil {
		return err
	}
	if err := s.checkGrant(ctx, agencyID, role, facilityID); err != nil {
		return err
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		// An administrator gives roles only to the agency's own staff: anyone else is
		// not found here. The operator gives a new staff member their first.
		if by != Operator {
			if n, err := rolesIn(ctx, tx, agencyID, accountID); err != nil {
				return err
			} else if n == 0 {
				return ErrNotFound
			}
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO staff_roles (account_id, agency_id, role, facility_id, created_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (account_id, role, facility_id) DO NOTHING`, accountID, agencyID, role, facilityID, time.Now().UTC())
		if err != nil {
			return fmt.Errorf("facility: grant role: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		return audit.Record(ctx, s.db, tx, audit.Entry{Actor: by.String(), Action: "staff.grant", AgencyID: agencyID, FacilityID: facilityID,
			Subject: "staff:" + accountID, Detail: role})
	})
}

// ResetStaff starts an administrator's reset of a staff member of the agency.
func (s *Service) ResetStaff(ctx context.Context, by Actor, agencyID, accountID string) error {
	if !ids.Valid(accountID) {
		return ErrNotFound
	}
	if err := s.require(ctx, by, agencyID, "", AgencyAdmin); err != nil {
		return err
	}
	var n int
	if err := s.db.Read().QueryRowContext(ctx, "SELECT COUNT(*) FROM staff_roles WHERE account_id = $1 AND agency_id = $2", accountID, agencyID).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	// A disabled member (someone who left) is not given a way back in.
	if acct, err := s.id.Account(ctx, accountID); err != nil {
		return err
	} else if acct.Status == "disabled" {
		return &ValidationError{Fields: map[string]string{"staff": "disabled"}}
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.id.StartStaffReset(ctx, tx, accountID); err != nil {
			return err
		}
		return audit.Record(ctx, s.db, tx, audit.Entry{Actor: by.String(), Action: "staff.reset", AgencyID: agencyID, Subject: "staff:" + accountID})
	})
}

// RevokeRole takes a role away from a staff member; agency admins may, but not
// their own last agency-admin role (an agency must keep an administrator).
func (s *Service) RevokeRole(ctx context.Context, by Actor, agencyID, accountID, role, facilityID string) error {
	if !ids.Valid(accountID) || (facilityID != "" && !ids.Valid(facilityID)) {
		return ErrNotFound
	}
	if err := s.require(ctx, by, agencyID, "", AgencyAdmin); err != nil {
		return err
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		// Two admins removing each other at once must not leave the agency with none.
		if err := s.db.LockChain(ctx, tx, staffLock(agencyID)); err != nil {
			return err
		}
		if role == AgencyAdmin {
			var admins int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM staff_roles r JOIN accounts a ON a.id = r.account_id
				WHERE r.agency_id = $1 AND r.role = 'agency_admin' AND a.status <> 'disabled'`, agencyID).Scan(&admins); err != nil {
				return err
			}
			if admins <= 1 {
				return &ValidationError{Fields: map[string]string{"role": "last_admin"}}
			}
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM staff_roles WHERE account_id = $1 AND agency_id = $2 AND role = $3 AND facility_id = $4",
			accountID, agencyID, role, facilityID)
		if err != nil {
			return fmt.Errorf("facility: revoke role: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			// A member of the agency without that role had it removed already (a
			// stale form, or another administrator meanwhile). Someone whose last
			// role went is no longer staff of the agency: not found, as for anyone
			// outside it.
			if n, err := rolesIn(ctx, tx, agencyID, accountID); err != nil {
				return err
			} else if n == 0 {
				return ErrNotFound
			}
			return ErrRoleGone
		}
		return audit.Record(ctx, s.db, tx, audit.Entry{Actor: by.String(), Action: "staff.revoke_role", AgencyID: agencyID, FacilityID: facilityID,
			Subject: "staff:" + accountID, Detail: role})
	})
}

// ErrRoleGone is the removal of a role the staff member no longer has.
var ErrRoleGone = problem.Declare(problem.Conflict, "role_gone", "facility: the staff member no longer has this role").
	Say("portal.staff.role_gone")

// rolesIn counts a person's roles in an agency.
func rolesIn(ctx context.Context, tx *sql.Tx, agencyID, accountID string) (int, error) {
	var n int
	err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM staff_roles WHERE agency_id = $1 AND account_id = $2", agencyID, accountID).Scan(&n)
	return n, err
}

// staffLock serialises changes to an agency's administrators on PostgreSQL.
func staffLock(agencyID string) int64 { return rosterLock("staff:" + agencyID) }

// DisableStaff ends a staff member's access to the agency for good.
func (s *Service) DisableStaff(ctx context.Context, by Actor, agencyID, accountID string) error {
	if !ids.Valid(accountID) {
		return ErrNotFound
	}
	if err := s.require(ctx, by, agencyID, "", AgencyAdmin); err != nil {
		return err
	}
	if by.AccountID == accountID {
		return &ValidationError{Fields: map[string]string{"staff": "yourself"}}
	}
	var n int
	if err := s.db.Read().QueryRowContext(ctx, "SELECT COUNT(*) FROM staff_roles WHERE account_id = $1 AND agency_id = $2", accountID, agencyID).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.db.LockChain(ctx, tx, staffLock(agencyID)); err != nil {
			return err
		}
		// The agency keeps at least one active administrator.
		var others int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM staff_roles r JOIN accounts a ON a.id = r.account_id
			WHERE r.agency_id = $1 AND r.role = 'agency_admin' AND a.status <> 'disabled' AND r.account_id <> $2`, agencyID, accountID).Scan(&others); err != nil {
			return err
		}
		var isAdmin int
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM staff_roles WHERE account_id = $1 AND role = 'agency_admin'", accountID).Scan(&isAdmin); err != nil {
			return err
		}
		if isAdmin > 0 && others == 0 {
			return &ValidationError{Fields: map[string]string{"staff": "last_admin"}}
		}
		if err := s.id.DisableStaff(ctx, tx, accountID); err != nil {
			return err
		}
		return audit.Record(ctx, s.db, tx, audit.Entry{Actor: by.String(), Action: "staff.disable", AgencyID: agencyID, Subject: "staff:" + accountID})
	})
}
