package facility

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"

	"github.com/kinlink/kinlink/internal/audit"
	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/problem"
	"github.com/kinlink/kinlink/internal/textsafe"
)

// Resident is an incarcerated person as families and kiosks see them: no housing unit
// or other private detail, and an opaque id.
type Resident struct {
	ID           string
	Number       string // the agency's ID
	FirstName    string
	LastName     string
	Status       string
	Restrictions []string
	Agency       Ref
	Facility     Ref
}

// Ref names an agency or a facility.
type Ref struct{ ID, Code, Name string }

// FoldName makes names comparable the way people type them: no accents, any case,
// single spaces, and compatibility forms folded (full-width letters as a keyboard
// types them). "José  GARCÍA", "ＧＡＲＣＩＡ" and "jose garcia" fold alike.
func FoldName(s string) string {
	var b strings.Builder
	for _, r := range norm.NFKD.String(s) {
		if !unicode.Is(unicode.Mn, r) {
			b.WriteRune(r)
		}
	}
	return strings.Join(strings.Fields(cases.Fold().String(b.String())), " ")
}

const residentColumns = `r.id, r.resident_number, r.first_name, r.last_name, r.status, r.restrictions,
	a.id, a.code, a.name, f.id, f.code, f.name`

const residentJoin = ` FROM residents r JOIN agencies a ON a.id = r.agency_id JOIN facilities f ON f.id = r.facility_id `

func scanResident(row interface{ Scan(...any) error }) (Resident, error) {
	var r Resident
	var restrictions string
	err := row.Scan(&r.ID, &r.Number, &r.FirstName, &r.LastName, &r.Status, &restrictions,
		&r.Agency.ID, &r.Agency.Code, &r.Agency.Name, &r.Facility.ID, &r.Facility.Code, &r.Facility.Name)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotFound
	}
	if err != nil {
		return r, fmt.Errorf("facility: read resident: %w", err)
	}
	if restrictions != "" {
		r.Restrictions = strings.Split(restrictions, ";")
	}
	return r, nil
}

// Resident returns a resident by opaque id.
func (s *Service) Resident(ctx context.Context, id string) (Resident, error) {
	if !ids.Valid(id) {
		return Resident{}, ErrNotFound
	}
	return scanResident(s.db.QueryRow(ctx, "SELECT "+residentColumns+residentJoin+"WHERE r.id = $1", id))
}

// ResidentNames names an agency's residents by opaque id, as staff know them
// ("José García · A100"), for pages that list ids such as the audit log. Ids of
// other agencies' residents, and ids that name no one, are left out.
func (s *Service) ResidentNames(ctx context.Context, agencyID string, residentIDs []string) (map[string]string, error) {
	names := map[string]string{}
	seen := map[string]bool{}
	var valid []any
	for _, id := range residentIDs {
		if !seen[id] && ids.Valid(id) {
			seen[id] = true
			valid = append(valid, id)
		}
	}
	if len(valid) == 0 {
		return names, nil
	}
	rows, err := s.db.Read().QueryContext(ctx, "SELECT id, first_name, last_name, resident_number FROM residents WHERE agency_id = $1 AND id IN ("+
		database.Placeholders(2, len(valid))+")", append([]any{agencyID}, valid...)...)
	if err != nil {
		return nil, fmt.Errorf("facility: resident names: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, first, last, number string
		if err := rows.Scan(&id, &first, &last, &number); err != nil {
			return nil, fmt.Errorf("facility: resident names: %w", err)
		}
		names[id] = first + " " + last + " · " + number
	}
	return names, rows.Err()
}

// ResidentSearch is what a family searches by: an agency and either the agency's
// resident ID (exact) or a last name with a first name or initial.
type ResidentSearch struct {
	AgencyCode string
	Number     string
	LastName   string
	FirstName  string
}

// The refusals of a search, each saying what to do instead.
var (
	errSearchAgency = problem.Declare(problem.Invalid, "invalid_request", "facility: no such agency").
			On("agency", "invalid").Say("people.search.agency")
	errSearchID = problem.Declare(problem.Invalid, "invalid_request", "facility: not a resident ID").
			On("resident_id", "invalid").Say("people.search.bad_id")
	errSearchName = problem.Declare(problem.Invalid, "invalid_request", "facility: not a name").Say("people.search.bad_name")
	errSearchHow  = problem.Declare(problem.Invalid, "invalid_request", "facility: nothing to search by").Say("people.search.how")
)

// maxResults bounds a name search: enough to find a person, too few to list a prison.
const maxResults = 20

// SearchResidents finds active residents of an agency.
func (s *Service) SearchResidents(ctx context.Context, q ResidentSearch) ([]Resident, error) {
	agency, err := s.AgencyByCode(ctx, q.AgencyCode)
	if errors.Is(err, ErrNotFound) {
		return nil, errSearchAgency
	}
	if err != nil {
		return nil, err
	}
	for field, v := range map[string]string{"resident_id": q.Number, "last_name": q.LastName, "first_name": q.FirstName} {
		if !cleanText(v) || len(v) > 100 {
			if field == "resident_id" {
				return nil, errSearchID
			}
			return nil, errSearchName.WithFields(map[string]string{field: "invalid"})
		}
	}
	number, last, first := strings.TrimSpace(q.Number), FoldName(q.LastName), FoldName(q.FirstName)
	var rows *sql.Rows
	switch {
	case number != "":
		rows, err = s.db.Read().QueryContext(ctx, "SELECT "+residentColumns+residentJoin+
			"WHERE r.agency_id = $1 AND r.status = 'active' AND UPPER(r.resident_number) = UPPER($2)", agency.ID, number)
	case last != "" && first != "":
		rows, err = s.db.Read().QueryContext(ctx, "SELECT "+residentColumns+residentJoin+
			`WHERE r.agency_id = $1 AND r.status = 'active' AND r.search_last = $2 AND r.search_first LIKE $3
			ORDER BY r.last_name, r.first_name, r.resident_number LIMIT $4`,
			agency.ID, last, strings.NewReplacer("%", "", "_", "").Replace(first)+"%", maxResults)
	default:
		fields := map[string]string{"first_name": "required", "resident_id": "or_name"}
		if last == "" {
			fields["last_name"] = "required"
		}
		return nil, errSearchHow.WithFields(fields)
	}
	if err != nil {
		return nil, fmt.Errorf("facility: search: %w", err)
	}
	defer rows.Close()
	var out []Resident
	for rows.Next() {
		r, err := scanResident(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// StaffResident is a resident as facility staff see them, private details included.
type StaffResident struct {
	Resident
	HousingUnit string
	PINSet      bool
	PINLocked   bool
}

// StaffSearch finds residents of the facilities a staff member may see, by the start
// of the agency's ID ("D1" finds D1001…, the exact one first) or of the last name. Staff see private details
// (housing), so every search is audited.
func (s *Service) StaffSearch(ctx context.Context, a Access, query string) ([]StaffResident, error) {
	q := strings.TrimSpace(query)
	if q == "" || !cleanText(q) || len(q) > 100 {
		return nil, nil
	}
	where, args := facilityFilter(a.FacilityIDs(), 5)
	rows, err := s.db.Read().QueryContext(ctx, "SELECT "+residentColumns+", r.housing_unit, r.pin_hash <> '', r.pin_locked"+residentJoin+
		`WHERE r.agency_id = $1 AND (UPPER(r.resident_number) LIKE UPPER($2) OR r.search_last LIKE $3)`+where+`
		ORDER BY CASE WHEN UPPER(r.resident_number) = UPPER($4) THEN 0 ELSE 1 END, r.resident_number, r.last_name, r.first_name LIMIT 100`,
		append([]any{a.AgencyID, likePrefix(q), likePrefix(FoldName(q)), q}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("facility: staff search: %w", err)
	}
	defer rows.Close()
	var out []StaffResident
	for rows.Next() {
		var r StaffResident
		var restrictions string
		if err := rows.Scan(&r.ID, &r.Number, &r.FirstName, &r.LastName, &r.Status, &restrictions,
			&r.Agency.ID, &r.Agency.Code, &r.Agency.Name, &r.Facility.ID, &r.Facility.Code, &r.Facility.Name,
			&r.HousingUnit, &r.PINSet, &r.PINLocked); err != nil {
			return nil, fmt.Errorf("facility: staff search: %w", err)
		}
		if restrictions != "" {
			r.Restrictions = strings.Split(restrictions, ";")
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	err = audit.RecordNow(ctx, s.db, audit.Entry{Actor: "staff:" + a.AccountID, Action: "resident.search", AgencyID: a.AgencyID,
		Detail: fmt.Sprintf("%q: %d found", q, len(out))})
	return out, err
}

// likePrefix is a LIKE pattern for what starts with s, its own wildcards taken out.
func likePrefix(s string) string { return strings.NewReplacer("%", "", "_", "").Replace(s) + "%" }

// facilityFilter narrows a query on r.facility_id to the given facilities (nil means
// all), with placeholders numbered from first.
func facilityFilter(ids []string, first int) (string, []any) {
	if ids == nil {
		return "", nil
	}
	if len(ids) == 0 {
		return " AND 1 = 0", nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return " AND r.facility_id IN (" + database.Placeholders(first, len(ids)) + ")", args
}

// cleanText reports whether s is valid UTF-8 without control characters, the text a
// person types (PostgreSQL refuses NUL, and nothing else needs them).
func cleanText(s string) bool {
	return utf8.ValidString(s) && !textsafe.HasHidden(s)
}

// StaffResidents reads an agency's residents by opaque id as staff see them (with
// their housing unit), for lists such as the day's visits. Ids of other agencies'
// residents, and ids that name no one, are left out. The caller audits the read.
func (s *Service) StaffResidents(ctx context.Context, agencyID string, residentIDs []string) (map[string]StaffResident, error) {
	out := map[string]StaffResident{}
	var valid []any
	for _, id := range residentIDs {
		if ids.Valid(id) && !slices.Contains(valid, any(id)) {
			valid = append(valid, id)
		}
	}
	if len(valid) == 0 {
		return out, nil
	}
	rows, err := s.db.Read().QueryContext(ctx, "SELECT "+residentColumns+", r.housing_unit, r.pin_hash <> '', r.pin_locked"+residentJoin+
		"WHERE r.agency_id = $1 AND r.id IN ("+database.Placeholders(2, len(valid))+")", append([]any{agencyID}, valid...)...)
	if err != nil {
		return nil, fmt.Errorf("facility: staff residents: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r StaffResident
		var restrictions string
		if err := rows.Scan(&r.ID, &r.Number, &r.FirstName, &r.LastName, &r.Status, &restrictions,
			&r.Agency.ID, &r.Agency.Code, &r.Agency.Name, &r.Facility.ID, &r.Facility.Code, &r.Facility.Name,
			&r.HousingUnit, &r.PINSet, &r.PINLocked); err != nil {
			return nil, fmt.Errorf("facility: staff residents: %w", err)
		}
		if restrictions != "" {
			r.Restrictions = strings.Split(restrictions, ";")
		}
		out[r.ID] = r
	}
	return out, rows.Err()
}
