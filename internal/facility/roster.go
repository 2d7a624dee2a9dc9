package facility

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kinlink/kinlink/internal/audit"
	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/problem"
	"github.com/kinlink/kinlink/internal/textsafe"
)

// A roster is the agency's list of residents from its offender-management system: a
// UTF-8 CSV with a header row and the columns
// resident_id,last_name,first_name,facility_code,housing_unit,status[,restrictions].
// It is a full roster: a resident of the importer's facilities who is missing from
// it is released (never deleted). An import is first a dry run; applying it changes
// everything in one transaction, or nothing.

// restrictions a roster may set on a resident.
var restrictions = []string{"no_messages", "no_photos", "no_videograms", "no_video", "no_deposits"}

// Restrictions lists what a roster may restrict for a resident; the list is a copy, so changing it changes nothing.
func Restrictions() []string { return slices.Clone(restrictions) }

var rosterColumns = []string{"resident_id", "last_name", "first_name", "facility_code", "housing_unit", "status"}

var residentNumber = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,31}$`)

// RosterSummary is what an import would do, or did.
type RosterSummary struct {
	Rows            int // data rows read
	New             int
	Moved           int
	Released        int
	Changed         int
	Unchanged       int
	Rejected        []RejectedRow
	Examples        []RosterChange // the first changes, for people to check
	ReleasesSkipped bool           // a rejected row had no readable id, so nobody was released for being missing
	// ActiveInScope is how many active residents the file covers (of the facilities
	// the importer may change), against which Released is judged.
	ActiveInScope int
	Applied       bool
	plan          string // the dry run's fingerprint of its changes (rosterPlan.fingerprint)
}

// MassRelease reports whether applying the file would release more residents at once
// than a roster normally does (more than 5, and more than a fifth of those active):
// the mark of a truncated sync or a wrong export, which a person must confirm.
func (s RosterSummary) MassRelease() bool { return massRelease(s.Released, s.ActiveInScope) }

func massRelease(releases, active int) bool { return releases > 5 && releases*5 > active }

// RejectedRow is a line that could not be used, and why (a stable code).
type RejectedRow struct {
	Line     int
	Resident string
	Reason   string
}

// RosterChange is one resident's change.
type RosterChange struct {
	Line     int // 0 for residents released because they are missing
	Resident string
	Name     string
	Kind     string // new, moved, released, changed
	From, To string // facility codes of a move
	// What a "changed" row changes: "returned" (back from release), "name",
	// "housing" (HousingFrom → HousingTo), "restrictions".
	Details                []string
	HousingFrom, HousingTo string
}

const maxExamples = 200

// ErrRosterHeader means the file is not a roster at all.
type ErrRosterHeader struct{ Missing []string }

func (e *ErrRosterHeader) Error() string {
	return "the roster's header row lacks the columns " + strings.Join(e.Missing, ", ")
}

// MaxRosterBytes is the largest roster file taken: a whole state's roster is a few
// megabytes.
const MaxRosterBytes = 64 << 20

var errRosterHeader = problem.Declare(problem.Invalid, "invalid_request", "facility: not a roster").Say("portal.roster.not_roster")

// Problem is the refusal, naming the missing columns.
func (e *ErrRosterHeader) Problem() *problem.Error {
	return errRosterHeader.WithFields(map[string]string{"header": "missing " + strings.Join(e.Missing, ", ")})
}

type rosterRow struct {
	line                            int
	number, first, last, facilityID string
	housing, status, restrictions   string
}

type existingResident struct {
	id, first, last, facilityID, housing, status, restrictions string
	seen                                                       bool
}

// RosterOptions say what an import does beyond its dry run.
type RosterOptions struct {
	Apply bool
	// AllowMassRelease lets an apply release more than a fifth of the residents in
	// scope: a person who read the dry run confirms it. Without it such a file (a
	// truncated sync, a wrong export) is refused rather than emptying a prison.
	AllowMassRelease bool
	// ConfirmReleases, when it is the number of residents the file releases, allows
	// that mass release: a person who read the dry run typed the number.
	ConfirmReleases int
	// UploadID marks a kept upload applied in the same transaction.
	UploadID string
	// expectPlan, when set, is the fingerprint of the changes the dry run showed;
	// an apply that would now make other changes is refused with ErrRosterChanged.
	expectPlan string
}

// ErrRosterChanged refuses to apply a kept roster whose changes are no longer those
// its dry run showed, because the residents changed since (another roster was
// applied): it must be checked again.
var ErrRosterChanged = problem.Declare(problem.Conflict, "roster_changed", "facility: the residents changed since this roster was checked").Say("portal.roster.changed_since")

// ErrMassRelease refuses an apply that would release too many residents at once.
type ErrMassRelease struct{ Releases, Active int }

func (e *ErrMassRelease) Error() string {
	return fmt.Sprintf("the roster would release %d of %d active residents; check the file, or confirm the release", e.Releases, e.Active)
}

var errMassRelease = problem.Declare(problem.Conflict, "mass_release", "facility: a mass release").Say("portal.roster.mass_release")

// Problem is the refusal, with the counts.
func (e *ErrMassRelease) Problem() *problem.Error {
	return errMassRelease.WithFields(map[string]string{"releases": strconv.Itoa(e.Releases), "active": strconv.Itoa(e.Active)}).With(e.Releases, e.Active)
}

// rosterLock serialises imports of one agency on PostgreSQL.
func rosterLock(agencyID string) int64 {
	sum := sha256.Sum256([]byte("roster:" + agencyID))
	return int64(binary.BigEndian.Uint64(sum[:8]) >> 1)
}

// ImportRoster reads a full roster for an agency and reports what it would change;
// with opts.Apply it also makes the changes, computed and written in one
// transaction. Agency admins may import for the whole agency, facility admins for
// their facilities only.
func (s *Service) ImportRoster(ctx context.Context, by Actor, agencyID string, file io.Reader, opts RosterOptions) (RosterSummary, error) {
	scope, err := s.rosterScope(ctx, by, agencyID)
	if err != nil {
		return RosterSummary{}, err
	}
	facilities, err := s.Facilities(ctx, agencyID)
	if err != nil {
		return RosterSummary{}, err
	}
	byCode, codeOf := map[string]string{}, map[string]string{}
	for _, f := range facilities {
		byCode[f.Code], codeOf[f.ID] = f.ID, f.Code
	}
	rows, sum, err := parseRoster(file, byCode, scope)
	if err != nil {
		return sum, err
	}
	if !opts.Apply {
		existing, err := existingResidents(ctx, s.db.Read(), agencyID)
		if err != nil {
			return sum, err
		}
		plan, err := planRoster(rows, &sum, existing, scope, codeOf)
		sum.plan, sum.ActiveInScope = plan.fingerprint(), plan.activeInScope
		return sum, err
	}
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.db.LockChain(ctx, tx, rosterLock(agencyID)); err != nil {
			return err
		}
		existing, err := existingResidents(ctx, tx, agencyID)
		if err != nil {
			return err
		}
		plan, err := planRoster(rows, &sum, existing, scope, codeOf)
		if err != nil {
			return err
		}
		if opts.expectPlan != "" && plan.fingerprint() != opts.expectPlan {
			return ErrRosterChanged
		}
		sum.ActiveInScope = plan.activeInScope
		if massRelease(len(plan.releases), plan.activeInScope) && !opts.AllowMassRelease && opts.ConfirmReleases != len(plan.releases) {
			return &ErrMassRelease{Releases: len(plan.releases), Active: plan.activeInScope}
		}
		if opts.UploadID != "" {
			res, err := tx.ExecContext(ctx, "UPDATE roster_uploads SET applied_at = $2 WHERE id = $1 AND applied_at IS NULL", opts.UploadID, time.Now().UTC())
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return ErrAlreadyApplied
			}
		}
		return s.writeRoster(ctx, tx, by, agencyID, plan, sum)
	})
	if err != nil {
		return sum, err
	}
	sum.Applied = true
	return sum, nil
}

type rosterUpdate struct {
	id string
	r  rosterRow
}

// rosterPlan is what an import changes.
type rosterPlan struct {
	inserts       []rosterRow
	updates       []rosterUpdate
	releases      []string
	activeInScope int
}

// fingerprint identifies the changes of a plan: the same file against the same
// residents gives the same one.
func (p rosterPlan) fingerprint() string {
	h := sha256.New()
	row := func(r rosterRow) string {
		return strings.Join([]string{r.number, r.first, r.last, r.facilityID, r.housing, r.status, r.restrictions}, "\x1f")
	}
	for _, r := range p.inserts {
		fmt.Fprintf(h, "new\x1e%s\x1e", row(r))
	}
	for _, u := range p.updates {
		fmt.Fprintf(h, "update\x1e%s\x1e%s\x1e", u.id, row(u.r))
	}
	for _, id := range p.releases {
		fmt.Fprintf(h, "release\x1e%s\x1e", id)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// planRoster compares the file's rows with the residents and fills the summary.
func planRoster(rows []rosterRow, sum *RosterSummary, existing map[string]*existingResident, scope map[string]bool, codeOf map[string]string) (rosterPlan, error) {
	var plan rosterPlan
	note := func(c RosterChange) {
		if len(sum.Examples) < maxExamples {
			sum.Examples = append(sum.Examples, c)
		}
	}
	reject := func(r rosterRow, reason string) {
		sum.Rejected = append(sum.Rejected, RejectedRow{Line: r.line, Resident: r.number, Reason: reason})
	}
	valid := 0
	for _, r := range rows {
		name := r.first + " " + r.last
		old, known := existing[r.number]
		if known {
			old.seen = true
			// A facility admin's file cannot move or release someone of another
			// facility into or out of theirs.
			if scope != nil && !scope[old.facilityID] && old.status == "active" {
				reject(r, "not_your_facility")
				continue
			}
		}
		valid++
		switch {
		case !known && r.status == "released":
			sum.Unchanged++ // never here, already gone: nothing to record
		case !known:
			sum.New++
			plan.inserts = append(plan.inserts, r)
			note(RosterChange{Line: r.line, Resident: r.number, Name: name, Kind: "new", To: codeOf[r.facilityID]})
		case r.status == "released" && old.status == "released":
			sum.Unchanged++
		case r.status == "released":
			sum.Released++
			plan.releases = append(plan.releases, old.id)
			note(RosterChange{Line: r.line, Resident: r.number, Name: name, Kind: "released", From: codeOf[old.facilityID]})
		case old.facilityID != r.facilityID && old.status == "active":
			sum.Moved++
			plan.updates = append(plan.updates, rosterUpdate{old.id, r})
			note(RosterChange{Line: r.line, Resident: r.number, Name: name, Kind: "moved", From: codeOf[old.facilityID], To: codeOf[r.facilityID]})
		case old.status != "active" || old.facilityID != r.facilityID || old.first != r.first || old.last != r.last ||
			old.housing != r.housing || old.restrictions != r.restrictions:
			sum.Changed++
			plan.updates = append(plan.updates, rosterUpdate{old.id, r})
			c := RosterChange{Line: r.line, Resident: r.number, Name: name, Kind: "changed"}
			if old.status != "active" {
				c.Details = append(c.Details, "returned")
			}
			if old.facilityID != r.facilityID {
				c.From, c.To = codeOf[old.facilityID], codeOf[r.facilityID]
			}
			if old.first != r.first || old.last != r.last {
				c.Details = append(c.Details, "name")
			}
			if old.housing != r.housing {
				c.Details = append(c.Details, "housing")
				c.HousingFrom, c.HousingTo = old.housing, r.housing
			}
			if old.restrictions != r.restrictions {
				c.Details = append(c.Details, "restrictions")
			}
			note(c)
		default:
			sum.Unchanged++
		}
	}
	rejectedIDs := map[string]bool{}
	for _, rj := range sum.Rejected {
		if rj.Resident == "" {
			sum.ReleasesSkipped = true
		}
		rejectedIDs[rj.Resident] = true
	}
	if valid == 0 {
		sum.ReleasesSkipped = true // an empty file releases nobody
	}
	var missing []string
	for number, old := range existing {
		inScope := scope == nil || scope[old.facilityID]
		if old.status == "active" && inScope {
			plan.activeInScope++
		}
		if !sum.ReleasesSkipped && !old.seen && old.status == "active" && !rejectedIDs[number] && inScope {
			missing = append(missing, number)
		}
	}
	sort.Strings(missing)
	for _, number := range missing {
		old := existing[number]
		sum.Released++
		plan.releases = append(plan.releases, old.id)
		note(RosterChange{Resident: number, Name: old.first + " " + old.last, Kind: "released", From: codeOf[old.facilityID]})
	}
	return plan, nil
}

// writeRoster makes a plan's changes inside tx, with its audit entry.
func (s *Service) writeRoster(ctx context.Context, tx *sql.Tx, by Actor, agencyID string, plan rosterPlan, sum RosterSummary) error {
	now := time.Now().UTC()
	ins, err := tx.PrepareContext(ctx, `INSERT INTO residents (id, agency_id, resident_number, first_name, last_name, facility_id,
		housing_unit, status, restrictions, created_at, updated_at, search_first, search_last)
		VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8, $9, $9, $10, $11)`)
	if err != nil {
		return err
	}
	defer ins.Close()
	for _, r := range plan.inserts {
		if _, err := ins.ExecContext(ctx, ids.New(), agencyID, r.number, r.first, r.last, r.facilityID, r.housing, r.restrictions, now,
			FoldName(r.first), FoldName(r.last)); err != nil {
			return fmt.Errorf("facility: roster line %d: %w", r.line, err)
		}
	}
	upd, err := tx.PrepareContext(ctx, `UPDATE residents SET first_name = $2, last_name = $3, facility_id = $4, housing_unit = $5,
		status = 'active', restrictions = $6, updated_at = $7, search_first = $8, search_last = $9 WHERE id = $1`)
	if err != nil {
		return err
	}
	defer upd.Close()
	for _, u := range plan.updates {
		if _, err := upd.ExecContext(ctx, u.id, u.r.first, u.r.last, u.r.facilityID, u.r.housing, u.r.restrictions, now,
			FoldName(u.r.first), FoldName(u.r.last)); err != nil {
			return fmt.Errorf("facility: roster line %d: %w", u.r.line, err)
		}
	}
	rel, err := tx.PrepareContext(ctx, "UPDATE residents SET status = 'released', updated_at = $2 WHERE id = $1")
	if err != nil {
		return err
	}
	defer rel.Close()
	for _, id := range plan.releases {
		if _, err := rel.ExecContext(ctx, id, now); err != nil {
			return fmt.Errorf("facility: roster release: %w", err)
		}
		// A released resident's kiosk sessions end at once.
		if _, err := tx.ExecContext(ctx, "UPDATE kiosk_sessions SET ended_at = $2 WHERE resident_id = $1 AND ended_at IS NULL", id, now); err != nil {
			return err
		}
	}
	return audit.Record(ctx, s.db, tx, audit.Entry{Actor: by.String(), Action: "roster.import", AgencyID: agencyID,
		Detail: fmt.Sprintf("%d rows: %d new, %d moved, %d released, %d changed, %d unchanged, %d rejected",
			sum.Rows, sum.New, sum.Moved, sum.Released, sum.Changed, sum.Unchanged, len(sum.Rejected))})
}

// rosterScope returns the facilities an actor may import for: nil for all of them.
func (s *Service) rosterScope(ctx context.Context, by Actor, agencyID string) (map[string]bool, error) {
	if by == Operator {
		return nil, nil
	}
	a, err := s.AccessOf(ctx, by.AccountID)
	if err != nil {
		return nil, err
	}
	if a.AgencyID != agencyID {
		return nil, ErrForbidden
	}
	scope := map[string]bool{}
	for _, g := range a.Grants {
		switch {
		case g.Role == AgencyAdmin:
			return nil, nil
		case g.Role == FacilityAdmin:
			scope[g.FacilityID] = true
		}
	}
	if len(scope) == 0 {
		return nil, ErrForbidden
	}
	return scope, nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func existingResidents(ctx context.Context, q querier, agencyID string) (map[string]*existingResident, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, resident_number, first_name, last_name, facility_id, housing_unit, status, restrictions
		FROM residents WHERE agency_id = $1`, agencyID)
	if err != nil {
		return nil, fmt.Errorf("facility: residents: %w", err)
	}
	defer rows.Close()
	out := map[string]*existingResident{}
	for rows.Next() {
		var number string
		e := &existingResident{}
		if err := rows.Scan(&e.id, &number, &e.first, &e.last, &e.facilityID, &e.housing, &e.status, &e.restrictions); err != nil {
			return nil, fmt.Errorf("facility: residents: %w", err)
		}
		out[number] = e
	}
	return out, rows.Err()
}

// parseRoster reads and checks every row. A file that is not a roster (no header,
// missing columns) is an error; a bad row is rejected with its line and reason.
func parseRoster(file io.Reader, byCode map[string]string, scope map[string]bool) ([]rosterRow, RosterSummary, error) {
	var sum RosterSummary
	br := bufio.NewReader(file)
	if b, err := br.Peek(3); err == nil && string(b) == "\ufeff" {
		br.Discard(3) // a byte-order mark from spreadsheet exports
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return nil, sum, &ErrRosterHeader{Missing: rosterColumns}
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	var missing []string
	for _, c := range rosterColumns {
		if _, ok := col[c]; !ok {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return nil, sum, &ErrRosterHeader{Missing: missing}
	}
	restrictionsCol, hasRestrictions := col["restrictions"]
	seen := map[string]int{}
	var rows []rosterRow
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				sum.Rows++
				sum.Rejected = append(sum.Rejected, RejectedRow{Line: pe.StartLine, Reason: "unreadable"})
				continue
			}
			return nil, sum, fmt.Errorf("facility: roster: %w", err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue // a blank line
		}
		sum.Rows++
		get := func(name string) string {
			i := col[name]
			if i >= len(rec) {
				return ""
			}
			return strings.TrimSpace(rec[i])
		}
		// Names are kept in compatibility-normal form (NFKC): full-width letters from
		// an input method, ligatures and the like are stored as the letters people
		// type, so they show and are found alike. A name stored otherwise by an
		// older version differs from its row and is rewritten by the next import.
		r := rosterRow{line: line, number: strings.ToUpper(get("resident_id")), last: textsafe.Name(get("last_name")),
			first: textsafe.Name(get("first_name")), housing: get("housing_unit"), status: strings.ToLower(get("status"))}
		reject := func(reason string) {
			sum.Rejected = append(sum.Rejected, RejectedRow{Line: line, Resident: r.number, Reason: reason})
		}
		if !residentNumber.MatchString(r.number) {
			r.number = ""
			reject("bad_resident_id")
			continue
		}
		if first, dup := seen[r.number]; dup {
			reject(fmt.Sprintf("duplicate_of_line_%d", first))
			continue
		}
		seen[r.number] = line
		switch {
		case len(rec) < len(rosterColumns):
			reject("missing_columns")
			continue
		case !utf8.ValidString(strings.Join(rec, "")):
			reject("not_utf8")
			continue
		case textsafe.HasHidden(strings.Join(rec, "")):
			reject("bad_characters")
			continue
		case r.last == "" || r.first == "":
			reject("missing_name")
			continue
		case len([]rune(r.last)) > 100 || len([]rune(r.first)) > 100 || len([]rune(r.housing)) > 50:
			reject("too_long")
			continue
		case r.status != "active" && r.status != "released":
			reject("bad_status")
			continue
		}
		id, ok := byCode[strings.ToUpper(get("facility_code"))]
		if !ok {
			reject("unknown_facility")
			continue
		}
		if scope != nil && !scope[id] {
			reject("not_your_facility")
			continue
		}
		r.facilityID = id
		if hasRestrictions && restrictionsCol < len(rec) {
			var list []string
			bad := false
			for _, w := range strings.Split(rec[restrictionsCol], ";") {
				w = strings.ToLower(strings.TrimSpace(w))
				if w == "" {
					continue
				}
				if !slices.Contains(restrictions, w) {
					bad = true
					break
				}
				if !slices.Contains(list, w) {
					list = append(list, w)
				}
			}
			if bad {
				reject("unknown_restriction")
				continue
			}
			sort.Strings(list)
			r.restrictions = strings.Join(list, ";")
		}
		rows = append(rows, r)
	}
	return rows, sum, nil
}

// ErrAlreadyApplied means an uploaded roster was applied before.
var ErrAlreadyApplied = problem.Declare(problem.Conflict, "roster_applied", "facility: this roster was already applied").Say("portal.roster.already")

// RosterUpload is a roster file kept between its dry run and its apply.
type RosterUpload struct {
	ID, Filename string
	Summary      RosterSummary
}

// ErrRosterEncoding refuses a roster file to keep whose text is not UTF-8 (a
// spreadsheet saved in another encoding), naming the first line that is not.
type ErrRosterEncoding struct{ Line int }

func (e *ErrRosterEncoding) Error() string {
	return fmt.Sprintf("line %d of the roster is not UTF-8 text", e.Line)
}

var errRosterEncoding = problem.Declare(problem.Invalid, "invalid_request", "facility: a roster line is not UTF-8").Say("portal.roster.not_utf8")

// Problem is the refusal, naming the line.
func (e *ErrRosterEncoding) Problem() *problem.Error {
	return errRosterEncoding.WithFields(map[string]string{"file": "line " + strconv.Itoa(e.Line) + " not utf8"}).With(e.Line)
}

// UploadRoster keeps a roster file and returns its dry run.
func (s *Service) UploadRoster(ctx context.Context, by Actor, agencyID, filename string, content []byte) (RosterUpload, error) {
	if !utf8.Valid(content) {
		line := 1
		for l := range bytes.Lines(content) {
			if !utf8.Valid(l) {
				break
			}
			line++
		}
		return RosterUpload{}, &ErrRosterEncoding{Line: line}
	}
	sum, err := s.ImportRoster(ctx, by, agencyID, strings.NewReader(string(content)), RosterOptions{})
	if err != nil {
		return RosterUpload{}, err
	}
	u := RosterUpload{ID: ids.New(), Filename: filename, Summary: sum}
	_, err = s.db.Write().ExecContext(ctx, `INSERT INTO roster_uploads (id, agency_id, account_id, filename, content, created_at, plan_hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, u.ID, agencyID, by.AccountID, filename, string(content), time.Now().UTC(), sum.plan)
	if err != nil {
		return RosterUpload{}, fmt.Errorf("facility: keep roster: %w", err)
	}
	return u, nil
}

// ApplyRoster applies a kept roster, once, if it makes the changes its dry run
// showed (ErrRosterChanged if the residents changed since). A mass release (see
// RosterSummary.MassRelease) is applied only when confirmReleases is the number of
// residents it releases, typed by the person who read the dry run; the same
// threshold holds for the command line and the API.
func (s *Service) ApplyRoster(ctx context.Context, by Actor, agencyID, uploadID string, confirmReleases int) (RosterUpload, error) {
	var u RosterUpload
	if !ids.Valid(uploadID) {
		return u, ErrNotFound
	}
	var content, plan string
	var applied sql.NullTime
	err := s.db.Read().QueryRowContext(ctx, "SELECT id, filename, content, applied_at, plan_hash FROM roster_uploads WHERE id = $1 AND agency_id = $2 AND account_id = $3",
		uploadID, agencyID, by.AccountID).Scan(&u.ID, &u.Filename, &content, &applied, &plan)
	if errors.Is(err, sql.ErrNoRows) {
		return u, ErrNotFound
	}
	if err != nil {
		return u, err
	}
	if applied.Valid {
		return u, ErrAlreadyApplied
	}
	if plan == "" {
		plan = "kept before its changes were remembered: check it again"
	}
	u.Summary, err = s.ImportRoster(ctx, by, agencyID, strings.NewReader(content), RosterOptions{Apply: true, ConfirmReleases: confirmReleases, UploadID: uploadID, expectPlan: plan})
	return u, err
}

// RosterHeader is the header row of a roster file: the required columns, then the
// optional restrictions.
func RosterHeader() []string { return append(slices.Clone(rosterColumns), "restrictions") }

// RosterLine is one current resident as a roster file lists them.
type RosterLine struct {
	Number, LastName, FirstName, FacilityCode, HousingUnit, Status, Restrictions string
}

// ExportRoster lists the active residents the importer may change (an agency admin
// all of the agency's, a facility admin their facilities'), in the columns a roster
// file has: what the next import should match. Reading the whole roster is audited.
func (s *Service) ExportRoster(ctx context.Context, by Actor, agencyID string) ([]RosterLine, error) {
	scope, err := s.rosterScope(ctx, by, agencyID)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.Read().QueryContext(ctx, `SELECT r.resident_number, r.last_name, r.first_name, f.id, f.code, r.housing_unit, r.status, r.restrictions
		FROM residents r JOIN facilities f ON f.id = r.facility_id WHERE r.agency_id = $1 AND r.status = 'active' ORDER BY f.code, r.resident_number`, agencyID)
	if err != nil {
		return nil, fmt.Errorf("facility: export roster: %w", err)
	}
	defer rows.Close()
	var out []RosterLine
	for rows.Next() {
		var l RosterLine
		var facilityID string
		if err := rows.Scan(&l.Number, &l.LastName, &l.FirstName, &facilityID, &l.FacilityCode, &l.HousingUnit, &l.Status, &l.Restrictions); err != nil {
			return nil, err
		}
		if scope == nil || scope[facilityID] {
			out = append(out, l)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	err = audit.RecordNow(ctx, s.db, audit.Entry{Actor: by.String(), Action: "roster.export", AgencyID: agencyID, Detail: fmt.Sprintf("%d residents", len(out))})
	return out, err
}
