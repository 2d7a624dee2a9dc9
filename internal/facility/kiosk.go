package facility

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/problem"

	"github.com/kinlink/kinlink/internal/audit"
	"github.com/kinlink/kinlink/internal/throttle"
)

// Kiosks and tablets are enrolled by a facility administrator: the portal shows a
// one-time code, which the device exchanges for a long-lived credential kept in its
// browser. Residents log in only on an enrolled, unrevoked device of their facility,
// with their agency ID and a PIN (SECURITY.md 29).

// Kiosk errors.
var (
	ErrKioskUnknown = problem.Declare(problem.Forbidden, "kiosk_not_enrolled", "facility: not an enrolled kiosk")
	// ErrEnrolCode is an enrolment code that is wrong, used or expired.
	ErrEnrolCode = problem.Declare(problem.Invalid, "invalid_code", "facility: not a valid enrolment code").
			On("code", "invalid").Say("kiosk.enrol.invalid")
	ErrBadLogin = problem.Declare(problem.Unauthenticated, "invalid_credentials", "facility: wrong resident ID or PIN").Say("kiosk.login.wrong")
	// ErrPINLocked answers as a wrong PIN does (the words say what a lock means): a
	// different answer would tell whoever tries IDs which residents have a PIN.
	ErrPINLocked = problem.Declare(problem.Unauthenticated, "invalid_credentials", "facility: PIN locked until staff unlock it").Say("kiosk.login.wrong")
	ErrWeakPIN   = problem.Declare(problem.Invalid, "weak_pin", "facility: PIN too easy to guess").Say("kiosk.pin.weak")
	ErrSamePIN   = problem.Declare(problem.Invalid, "same_pin", "facility: the new PIN is the one it replaces").Say("kiosk.pin.same")
	ErrWrongPIN  = problem.Declare(problem.Invalid, "wrong_pin", "facility: the current PIN is not right").Say("kiosk.pin.current_wrong")
	// ErrNoFacility is a kiosk without the facility it stands in.
	ErrNoFacility = problem.Declare(problem.Invalid, "invalid_request", "facility: a kiosk needs its facility").
			On("facility", "required").Say("portal.kiosks.choose_facility")
	errKioskBusy    = problem.Declare(problem.RateLimited, "kiosk_busy", "facility: too many wrong sign-ins at this kiosk").Say("kiosk.login.busy")
	errKioskBusyOne = problem.Declare(problem.RateLimited, "kiosk_busy", "facility: too many wrong sign-ins at this kiosk").Say("kiosk.login.busy_one")
)

// DefaultKioskIdle ends a resident's kiosk session left unused (SECURITY.md 22);
// the operator may set it shorter (SetKioskIdle), never longer.
const DefaultKioskIdle = 15 * time.Minute

// SetKioskIdle sets how long a resident's kiosk session lasts unused.
func (s *Service) SetKioskIdle(d time.Duration) {
	if d > 0 {
		s.kioskIdle = d
	}
}

// KioskIdle is how long a resident's kiosk session lasts unused: the server ends it
// then, and the kiosk's page signs out then too, after a countdown.
func (s *Service) KioskIdle() time.Duration { return s.kioskIdle }

// maxPINFailures locks a resident's PIN until staff unlock it.
const maxPINFailures = 5

const enrolCodeTTL = 24 * time.Hour

// Kiosk is an enrolled (or waiting) device.
type Kiosk struct {
	ID, FacilityID, Name string
	Enrolled, Revoked    bool
	CreatedAt            time.Time
}

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func token() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// enrolCode is 10 characters a person can type from the portal to the device.
func enrolCode() string {
	const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 10)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:5]) + "-" + string(b[5:])
}

func normalizeEnrolCode(c string) string {
	return strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(strings.TrimSpace(c)))
}

// CreateKiosk registers a device at a facility and returns its one-time enrolment
// code, valid for a day. Facility administrators of the facility may.
func (s *Service) CreateKiosk(ctx context.Context, by Actor, agencyID, facilityID, name string) (Kiosk, string, error) {
	if facilityID == "" {
		return Kiosk{}, "", ErrNoFacility
	}
	if !ids.Valid(facilityID) {
		return Kiosk{}, "", ErrNotFound
	}
	if err := s.require(ctx, by, agencyID, facilityID, FacilityAdmin); err != nil {
		return Kiosk{}, "", err
	}
	name = strings.TrimSpace(name)
	if name == "" || len([]rune(name)) > 100 || !cleanText(name) {
		return Kiosk{}, "", &ValidationError{Fields: map[string]string{"name": "required"}}
	}
	var owner string
	if err := s.db.Read().QueryRowContext(ctx, "SELECT agency_id FROM facilities WHERE id = $1", facilityID).Scan(&owner); err != nil || owner != agencyID {
		return Kiosk{}, "", ErrNotFound
	}
	k := Kiosk{ID: ids.New(), FacilityID: facilityID, Name: name, CreatedAt: time.Now().UTC()}
	code := enrolCode()
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO kiosks (id, facility_id, name, enrol_code_hash, enrol_expires_at, created_by, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, k.ID, facilityID, name, digest(normalizeEnrolCode(code)), k.CreatedAt.Add(enrolCodeTTL), by.String(), k.CreatedAt)
		if err != nil {
			return fmt.Errorf("facility: create kiosk: %w", err)
		}
		return audit.Record(ctx, s.db, tx, audit.Entry{Actor: by.String(), Action: "kiosk.create", AgencyID: agencyID, FacilityID: facilityID,
			Subject: "kiosk:" + k.ID, Detail: name})
	})
	return k, code, err
}

// EnrolKiosk turns a one-time code into the device's credential.
func (s *Service) EnrolKiosk(ctx context.Context, code, clientIP string) (credential string, err error) {
	// Codes are 50 random bits and live a day; still, guessing is bounded: a few
	// wrong codes from one address pause it. A right one gives its attempt back.
	key := "kiosk-enrol:ip:" + throttle.AddressKey(clientIP)
	if err := s.throttle.Reserve(ctx, []string{key}, []throttle.Rule{enrolGuesses}); err != nil {
		return "", err
	}
	defer func() {
		if err == nil {
			s.throttle.Release(ctx, key, enrolGuesses)
		}
	}()
	credential = token()
	now := time.Now().UTC()
	var id, facilityID, agencyID string
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `UPDATE kiosks SET credential_hash = $2, enrolled_at = $3, enrol_code_hash = ''
			WHERE enrol_code_hash = $1 AND enrol_expires_at > $3 AND enrolled_at IS NULL AND revoked_at IS NULL
			RETURNING id, facility_id`, digest(normalizeEnrolCode(code)), digest(credential), now).Scan(&id, &facilityID)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrEnrolCode
		}
		if err != nil {
			return fmt.Errorf("facility: enrol kiosk: %w", err)
		}
		if err := tx.QueryRowContext(ctx, "SELECT agency_id FROM facilities WHERE id = $1", facilityID).Scan(&agencyID); err != nil {
			return err
		}
		return audit.Record(ctx, s.db, tx, audit.Entry{Actor: "kiosk:" + id, Action: "kiosk.enrol", AgencyID: agencyID, FacilityID: facilityID, Subject: "kiosk:" + id})
	})
	return credential, err
}

// enrolGuesses bounds wrong enrolment codes from one address: a facility's staff
// mistyping a code now and then never reach it.
var enrolGuesses = throttle.Rule{Max: 10, Window: time.Hour, Lockout: time.Hour}

// KioskDevice is an enrolled device as the kiosk pages see it.
type KioskDevice struct {
	ID, Name string
	Facility Ref
	AgencyID string
}

// KioskByCredential returns the enrolled, unrevoked device of a credential.
func (s *Service) KioskByCredential(ctx context.Context, credential string) (KioskDevice, error) {
	var k KioskDevice
	if credential == "" {
		return k, ErrKioskUnknown
	}
	err := s.db.Read().QueryRowContext(ctx, `SELECT k.id, k.name, f.id, f.code, f.name, f.agency_id FROM kiosks k JOIN facilities f ON f.id = k.facility_id
		WHERE k.credential_hash = $1 AND k.revoked_at IS NULL`, digest(credential)).Scan(&k.ID, &k.Name, &k.Facility.ID, &k.Facility.Code, &k.Facility.Name, &k.AgencyID)
	if errors.Is(err, sql.ErrNoRows) {
		return k, ErrKioskUnknown
	}
	return k, err
}

// Kiosks lists the devices of the facilities a staff member may see.
func (s *Service) Kiosks(ctx context.Context, a Access) ([]Kiosk, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT k.id, k.facility_id, k.name, k.enrolled_at IS NOT NULL, k.revoked_at IS NOT NULL, k.created_at
		FROM kiosks k JOIN facilities f ON f.id = k.facility_id WHERE f.agency_id = $1 ORDER BY k.created_at DESC`, a.AgencyID)
	if err != nil {
		return nil, fmt.Errorf("facility: kiosks: %w", err)
	}
	defer rows.Close()
	var out []Kiosk
	for rows.Next() {
		var k Kiosk
		if err := rows.Scan(&k.ID, &k.FacilityID, &k.Name, &k.Enrolled, &k.Revoked, &k.CreatedAt); err != nil {
			return nil, err
		}
		if a.Has(FacilityAdmin, k.FacilityID) {
			out = append(out, k)
		}
	}
	return out, rows.Err()
}

// RevokeKiosk stops a device at once: its credential and its residents' sessions end.
func (s *Service) RevokeKiosk(ctx context.Context, by Actor, a Access, kioskID string) error {
	if !ids.Valid(kioskID) {
		return ErrNotFound
	}
	var facilityID string
	err := s.db.Read().QueryRowContext(ctx, `SELECT k.facility_id FROM kiosks k JOIN facilities f ON f.id = k.facility_id
		WHERE k.id = $1 AND f.agency_id = $2`, kioskID, a.AgencyID).Scan(&facilityID)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !a.Has(FacilityAdmin, facilityID)) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "UPDATE kiosks SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL", kioskID, now); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE kiosk_sessions SET ended_at = $2 WHERE kiosk_id = $1 AND ended_at IS NULL", kioskID, now); err != nil {
			return err
		}
		return audit.Record(ctx, s.db, tx, audit.Entry{Actor: by.String(), Action: "kiosk.revoke", AgencyID: a.AgencyID, FacilityID: facilityID, Subject: "kiosk:" + kioskID})
	})
}

// CheckPIN refuses PINs that are easy to guess: not 4 to 8 digits, one digit
// repeated, a run up or down, a pair repeated, a year from 1900 to 2099, or one of
// the PINs people pick most.
func CheckPIN(pin string) error {
	if len(pin) < 4 || len(pin) > 8 {
		return ErrWeakPIN
	}
	for _, r := range pin {
		if r < '0' || r > '9' {
			return ErrWeakPIN
		}
	}
	up, down, same := true, true, true
	for i := 1; i < len(pin); i++ {
		d := int(pin[i]) - int(pin[i-1])
		up = up && (d == 1 || d == -9)
		down = down && (d == -1 || d == 9)
		same = same && d == 0
	}
	if up || down || same {
		return ErrWeakPIN
	}
	if len(pin)%2 == 0 && strings.Repeat(pin[:2], len(pin)/2) == pin {
		return ErrWeakPIN
	}
	if len(pin) == 4 {
		if y, _ := strconv.Atoi(pin); y >= 1900 && y <= 2099 {
			return ErrWeakPIN
		}
	}
	for _, common := range []string{"2580", "0852", "1004", "1122", "2468", "1357", "0007", "6969", "1010", "123123", "112233", "159753", "147258", "258369"} {
		if pin == common {
			return ErrWeakPIN
		}
	}
	return nil
}

// SetFirstPIN sets a resident's PIN on staff's word; the resident must change it at
// first login. It also unlocks a locked PIN. Facility admins of the resident's
// facility may.
func (s *Service) SetFirstPIN(ctx context.Context, by Actor, a Access, residentID, pin string) error {
	pin = strings.TrimSpace(pin) // a space typed around a PIN is not part of it
	r, err := s.Resident(ctx, residentID)
	if err != nil {
		return err
	}
	if r.Agency.ID != a.AgencyID || !a.Has(FacilityAdmin, r.Facility.ID) {
		return ErrNotFound
	}
	return s.setPIN(ctx, by, r, pin, true)
}

// ErrPINSet means a resident already has a PIN.
var ErrPINSet = problem.Declare(problem.Conflict, "pin_set", "facility: the resident already has a PIN")

// SetDemoPIN sets a resident's PIN for demo data, without the change at first login,
// unless the resident has one already.
func (s *Service) SetDemoPIN(ctx context.Context, residentID, pin string) error {
	r, err := s.Resident(ctx, residentID)
	if err != nil {
		return err
	}
	var hash string
	if err := s.db.Read().QueryRowContext(ctx, "SELECT pin_hash FROM residents WHERE id = $1", residentID).Scan(&hash); err != nil {
		return err
	}
	if hash != "" {
		return ErrPINSet
	}
	return s.setPIN(ctx, Operator, r, pin, false)
}

func (s *Service) setPIN(ctx context.Context, by Actor, r Resident, pin string, mustChange bool) error {
	residentID := r.ID
	if err := CheckPIN(pin); err != nil {
		return err
	}
	hash, err := s.id.Hasher().Hash(ctx, pin)
	if err != nil {
		return err
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "UPDATE residents SET pin_hash = $2, pin_must_change = $3, pin_failures = 0, pin_locked = FALSE WHERE id = $1",
			residentID, hash, mustChange); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE kiosk_sessions SET ended_at = $2 WHERE resident_id = $1 AND ended_at IS NULL", residentID, time.Now().UTC()); err != nil {
			return err
		}
		return audit.Record(ctx, s.db, tx, audit.Entry{Actor: by.String(), Action: "resident.pin_set", AgencyID: r.Agency.ID, FacilityID: r.Facility.ID, ResidentID: residentID})
	})
}

// KioskSession is a resident signed in at a kiosk.
type KioskSession struct {
	Token      string
	Resident   Resident
	MustChange bool // the PIN was set by staff and must be changed now
}

// ResidentLogin signs a resident in at an enrolled kiosk of their facility. Wrong
// PINs are counted before they are checked; the fifth locks the PIN until staff
// unlock it. Unknown IDs, residents of other facilities and wrong PINs answer alike.
func (s *Service) ResidentLogin(ctx context.Context, kiosk KioskDevice, number, pin string, replaces string) (KioskSession, error) {
	number, pin = strings.TrimSpace(number), strings.TrimSpace(pin)
	if !residentNumber.MatchString(number) || len(pin) > 16 {
		return KioskSession{}, ErrBadLogin
	}
	// A kiosk takes at most kioskFailures wrong sign-ins in its window, whoever they
	// are for: trying one common PIN against every resident stops here.
	key := kioskKey(kiosk.ID)
	if err := s.throttle.Reserve(ctx, []string{key}, []throttle.Rule{kioskFailures}); err != nil {
		if l, ok := throttle.IsLimited(err); ok {
			return KioskSession{}, &ErrKioskBusy{RetryAfter: l.RetryAfter}
		}
		return KioskSession{}, err
	}
	sess, err := s.residentLogin(ctx, kiosk, number, pin, replaces)
	if err == nil {
		s.throttle.Release(ctx, key, kioskFailures)
		return sess, nil
	}
	if errors.Is(err, ErrBadLogin) || errors.Is(err, ErrPINLocked) {
		action := "kiosk.login_failed"
		if errors.Is(err, ErrPINLocked) {
			action = "kiosk.pin_locked"
		}
		audit.RecordNow(ctx, s.db, audit.Entry{Actor: "kiosk:" + kiosk.ID, Action: action, AgencyID: kiosk.AgencyID,
			FacilityID: kiosk.Facility.ID, Subject: "resident_number:" + strings.ToUpper(number)})
	} else {
		s.throttle.Release(ctx, key, kioskFailures) // nothing was checked
	}
	return sess, err
}

// kioskFailures bounds wrong PINs at one kiosk, whoever they are for, so that one
// PIN tried against many residents' IDs stops (the per-resident lock stops trying
// many PINs against one). Ten wrong ones within 15 minutes pause the kiosk for a
// minute: a queue of residents who mistype now and then is barely held up, and one
// person cannot keep the others out for long (SECURITY.md 35). A pause that follows
// the last one while wrong PINs keep coming is twice as long, up to 15 minutes, so
// guessing goes on at no more than 10 tries a quarter of an hour; staff can end a
// pause from the portal (ClearKioskPause). A right sign-in gives its own try back
// and clears nothing else: an attacker's own PIN between guesses buys no more.
var kioskFailures = throttle.Rule{Max: 10, Window: 15 * time.Minute, Lockout: time.Minute, MaxLockout: 15 * time.Minute}

// kioskKey is the counter of a kiosk's wrong PINs.
func kioskKey(kioskID string) string { return "kiosk:" + kioskID }

// KioskPaused says how long a kiosk still refuses sign-ins after too many wrong
// PINs (0 when it takes them), without counting an attempt.
func (s *Service) KioskPaused(ctx context.Context, kioskID string) (time.Duration, error) {
	err := s.throttle.Check(ctx, kioskKey(kioskID))
	if l, ok := throttle.IsLimited(err); ok {
		return l.RetryAfter, nil
	}
	return 0, err
}

// ClearKioskPause ends a kiosk's pause after wrong PINs at once, on the word of a
// facility administrator of its facility (the staff who enrol and revoke it, and
// who are there to see who was guessing). It is audited. The pauses in a row are
// kept: if the guessing goes on, the next pause is longer. ok is false when the
// kiosk was not paused (nothing is changed or recorded).
func (s *Service) ClearKioskPause(ctx context.Context, by Actor, a Access, kioskID string) (ok bool, err error) {
	if !ids.Valid(kioskID) {
		return false, ErrNotFound
	}
	var facilityID string
	err = s.db.Read().QueryRowContext(ctx, `SELECT k.facility_id FROM kiosks k JOIN facilities f ON f.id = k.facility_id
		WHERE k.id = $1 AND f.agency_id = $2`, kioskID, a.AgencyID).Scan(&facilityID)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !a.Has(FacilityAdmin, facilityID)) {
		return false, ErrNotFound
	}
	if err != nil {
		return false, err
	}
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		if ok, err = s.throttle.Unlock(ctx, tx, kioskKey(kioskID)); err != nil || !ok {
			return err
		}
		return audit.Record(ctx, s.db, tx, audit.Entry{Actor: by.String(), Action: "kiosk.pause_cleared", AgencyID: a.AgencyID,
			FacilityID: facilityID, Subject: "kiosk:" + kioskID})
	})
	return ok && err == nil, err
}

// ErrKioskBusy means the kiosk had too many wrong sign-ins lately.
type ErrKioskBusy struct{ RetryAfter time.Duration }

func (e *ErrKioskBusy) Error() string { return "facility: too many wrong sign-ins at this kiosk" }

// Problem is the refusal, saying in whole minutes (rounded up) when the kiosk takes
// sign-ins again, and that staff can end the pause.
func (e *ErrKioskBusy) Problem() *problem.Error {
	if e.RetryAfter <= time.Minute {
		return errKioskBusyOne.After(e.RetryAfter)
	}
	return errKioskBusy.After(e.RetryAfter).With(int(math.Ceil(e.RetryAfter.Minutes())))
}

// checkPIN compares a PIN typed for a resident with the stored hash. The attempt is
// counted before it is compared, atomically and only while fewer than maxPINFailures
// are counted, so parallel guesses get no more comparisons than that. A right PIN
// clears the count; the wrong one that reaches maxPINFailures locks the PIN until
// staff unlock it (ErrPINLocked). Every path that checks a resident's PIN goes
// through here (SECURITY.md 37).
func (s *Service) checkPIN(ctx context.Context, residentID, hash, pin string, wrong error) error {
	var failures int
	err := s.db.Write().QueryRowContext(ctx, `UPDATE residents SET pin_failures = pin_failures + 1
		WHERE id = $1 AND NOT pin_locked AND pin_failures < $2 RETURNING pin_failures`, residentID, maxPINFailures).Scan(&failures)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrPINLocked // locked, or its last tries are being checked right now
	}
	if err != nil {
		return err
	}
	ok, _, err := s.id.Hasher().Verify(ctx, pin, hash)
	if err != nil {
		s.db.Write().ExecContext(ctx, "UPDATE residents SET pin_failures = pin_failures - 1 WHERE id = $1 AND pin_failures > 0", residentID)
		return err
	}
	if ok {
		res, err := s.db.Write().ExecContext(ctx, "UPDATE residents SET pin_failures = 0 WHERE id = $1 AND NOT pin_locked", residentID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrPINLocked // locked by parallel wrong PINs meanwhile
		}
		return nil
	}
	if failures >= maxPINFailures {
		if _, err := s.db.Write().ExecContext(ctx, "UPDATE residents SET pin_locked = TRUE WHERE id = $1", residentID); err != nil {
			return err
		}
		return ErrPINLocked
	}
	return wrong
}

func (s *Service) residentLogin(ctx context.Context, kiosk KioskDevice, number, pin string, replaces string) (KioskSession, error) {
	var id, hash string
	var locked, mustChange bool
	err := s.db.Read().QueryRowContext(ctx, `SELECT id, pin_hash, pin_locked, pin_must_change FROM residents
		WHERE agency_id = $1 AND facility_id = $2 AND UPPER(resident_number) = UPPER($3) AND status = 'active'`,
		kiosk.AgencyID, kiosk.Facility.ID, number).Scan(&id, &hash, &locked, &mustChange)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && hash == "") {
		s.id.Hasher().Verify(ctx, pin, s.dummyPINHash(ctx)) // the same work as a real check
		return KioskSession{}, ErrBadLogin
	}
	if err != nil {
		return KioskSession{}, err
	}
	if locked {
		return KioskSession{}, ErrPINLocked
	}
	if err := s.checkPIN(ctx, id, hash, pin, ErrBadLogin); err != nil {
		return KioskSession{}, err
	}
	sess := KioskSession{Token: token(), MustChange: mustChange}
	now := time.Now().UTC()
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE residents SET pin_failures = 0 WHERE id = $1 AND NOT pin_locked", id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrPINLocked // locked by parallel wrong PINs meanwhile
		}
		// Whoever was signed in at this browser before is signed out.
		if replaces != "" {
			if _, err := tx.ExecContext(ctx, "UPDATE kiosk_sessions SET ended_at = $2 WHERE token_hash = $1 AND ended_at IS NULL", digest(replaces), now); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO kiosk_sessions (token_hash, resident_id, kiosk_id, created_at, last_seen_at)
			VALUES ($1, $2, $3, $4, $4)`, digest(sess.Token), id, kiosk.ID, now); err != nil {
			return err
		}
		return audit.Record(ctx, s.db, tx, audit.Entry{Actor: "resident:" + id, Action: "kiosk.login", AgencyID: kiosk.AgencyID,
			FacilityID: kiosk.Facility.ID, ResidentID: id, Subject: "kiosk:" + kiosk.ID})
	})
	if err != nil {
		return KioskSession{}, err
	}
	sess.Resident, err = s.Resident(ctx, id)
	return sess, err
}

// dummyPINHash is verified against for unknown residents, so that timing does not
// tell which IDs exist. It is made once, at the first need.
func (s *Service) dummyPINHash(ctx context.Context) string {
	s.dummyOnce.Do(func() { s.dummy, _ = s.id.Hasher().Hash(ctx, "000000") })
	return s.dummy
}

// KioskResident returns the resident of a live kiosk session on that kiosk, and
// keeps the session alive. A session idle for longer than KioskIdle, ended, or from
// another device is ErrBadLogin.
func (s *Service) KioskResident(ctx context.Context, kiosk KioskDevice, sessionToken string) (KioskSession, error) {
	return s.kioskResident(ctx, kiosk, sessionToken, true)
}

// KioskPeek is KioskResident without keeping the session alive: what a page's
// background check for new messages uses, so that an unattended screen still
// signs out after the idle limit.
func (s *Service) KioskPeek(ctx context.Context, kiosk KioskDevice, sessionToken string) (KioskSession, error) {
	return s.kioskResident(ctx, kiosk, sessionToken, false)
}

func (s *Service) kioskResident(ctx context.Context, kiosk KioskDevice, sessionToken string, touch bool) (KioskSession, error) {
	if sessionToken == "" {
		return KioskSession{}, ErrBadLogin
	}
	now := time.Now().UTC()
	var id string
	var mustChange bool
	var err error
	if touch {
		err = s.db.Write().QueryRowContext(ctx, `UPDATE kiosk_sessions SET last_seen_at = $3
			WHERE token_hash = $1 AND kiosk_id = $2 AND ended_at IS NULL AND last_seen_at > $4
			RETURNING resident_id`, digest(sessionToken), kiosk.ID, now, now.Add(-s.kioskIdle)).Scan(&id)
	} else {
		err = s.db.Read().QueryRowContext(ctx, `SELECT resident_id FROM kiosk_sessions
			WHERE token_hash = $1 AND kiosk_id = $2 AND ended_at IS NULL AND last_seen_at > $3`,
			digest(sessionToken), kiosk.ID, now.Add(-s.kioskIdle)).Scan(&id)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return KioskSession{}, ErrBadLogin
	}
	if err != nil {
		return KioskSession{}, err
	}
	r, err := s.Resident(ctx, id)
	if err != nil {
		return KioskSession{}, err
	}
	if r.Status != "active" || r.Facility.ID != kiosk.Facility.ID {
		return KioskSession{}, ErrBadLogin
	}
	if err := s.db.Read().QueryRowContext(ctx, "SELECT pin_must_change FROM residents WHERE id = $1", id).Scan(&mustChange); err != nil {
		return KioskSession{}, err
	}
	return KioskSession{Token: sessionToken, Resident: r, MustChange: mustChange}, nil
}

// KioskLogout ends a resident's kiosk session.
func (s *Service) KioskLogout(ctx context.Context, sessionToken string) error {
	_, err := s.db.Write().ExecContext(ctx, "UPDATE kiosk_sessions SET ended_at = $2 WHERE token_hash = $1 AND ended_at IS NULL", digest(sessionToken), time.Now().UTC())
	return err
}

// ChangePIN sets the resident's own PIN, as the first login requires.
// The current PIN is needed unless staff set it and it must change now, so that
// someone at a kiosk left signed in cannot lock the resident out. The resident's
// other kiosk sessions end.
func (s *Service) ChangePIN(ctx context.Context, kiosk KioskDevice, sess KioskSession, current, pin string) error {
	current, pin = strings.TrimSpace(current), strings.TrimSpace(pin)
	if err := CheckPIN(pin); err != nil {
		return err
	}
	r := sess.Resident
	var stored string
	if err := s.db.Read().QueryRowContext(ctx, "SELECT pin_hash FROM residents WHERE id = $1", r.ID).Scan(&stored); err != nil {
		return err
	}
	if !sess.MustChange {
		// Someone at a kiosk left signed in must not find the PIN by trying them
		// here: the current PIN is counted and limited exactly as at sign-in, at the
		// kiosk and for the resident, and a wrong one is audited.
		key := kioskKey(kiosk.ID)
		if err := s.throttle.Reserve(ctx, []string{key}, []throttle.Rule{kioskFailures}); err != nil {
			if l, ok := throttle.IsLimited(err); ok {
				return &ErrKioskBusy{RetryAfter: l.RetryAfter}
			}
			return err
		}
		err := s.checkPIN(ctx, r.ID, stored, current, ErrWrongPIN)
		switch {
		case err == nil:
			s.throttle.Release(ctx, key, kioskFailures)
		case errors.Is(err, ErrWrongPIN), errors.Is(err, ErrPINLocked):
			action := "kiosk.pin_change_failed"
			if errors.Is(err, ErrPINLocked) {
				action = "kiosk.pin_locked"
				// A locked PIN signs its resident out everywhere.
				s.db.Write().ExecContext(ctx, "UPDATE kiosk_sessions SET ended_at = $2 WHERE resident_id = $1 AND ended_at IS NULL", r.ID, time.Now().UTC())
			}
			audit.RecordNow(ctx, s.db, audit.Entry{Actor: "kiosk:" + kiosk.ID, Action: action, AgencyID: kiosk.AgencyID,
				FacilityID: kiosk.Facility.ID, ResidentID: r.ID, Subject: "resident:" + r.ID})
			return err
		default:
			s.throttle.Release(ctx, key, kioskFailures) // nothing was checked
			return err
		}
	}
	// The PIN staff chose is known to staff: the resident's own must differ from it
	// (and a voluntary change from the one it replaces).
	if same, _, err := s.id.Hasher().Verify(ctx, pin, stored); err != nil {
		return err
	} else if same {
		return ErrSamePIN
	}
	hash, err := s.id.Hasher().Hash(ctx, pin)
	if err != nil {
		return err
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "UPDATE residents SET pin_hash = $2, pin_must_change = FALSE, pin_failures = 0 WHERE id = $1", r.ID, hash); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE kiosk_sessions SET ended_at = $3 WHERE resident_id = $1 AND token_hash <> $2 AND ended_at IS NULL",
			r.ID, digest(sess.Token), time.Now().UTC()); err != nil {
			return err
		}
		return audit.Record(ctx, s.db, tx, audit.Entry{Actor: "resident:" + r.ID, Action: "resident.pin_changed", AgencyID: r.Agency.ID,
			FacilityID: r.Facility.ID, ResidentID: r.ID})
	})
}

// RenewEnrolCode gives a kiosk that is not enrolled yet a fresh one-time code.
func (s *Service) RenewEnrolCode(ctx context.Context, by Actor, agencyID, kioskID string) (string, error) {
	if !ids.Valid(kioskID) {
		return "", ErrNotFound
	}
	var facilityID string
	err := s.db.Read().QueryRowContext(ctx, `SELECT k.facility_id FROM kiosks k JOIN facilities f ON f.id = k.facility_id
		WHERE k.id = $1 AND f.agency_id = $2 AND k.enrolled_at IS NULL AND k.revoked_at IS NULL`, kioskID, agencyID).Scan(&facilityID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", err
	}
	if err := s.require(ctx, by, agencyID, facilityID, FacilityAdmin); err != nil {
		return "", err
	}
	code := enrolCode()
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "UPDATE kiosks SET enrol_code_hash = $2, enrol_expires_at = $3 WHERE id = $1",
			kioskID, digest(normalizeEnrolCode(code)), time.Now().UTC().Add(enrolCodeTTL)); err != nil {
			return err
		}
		return audit.Record(ctx, s.db, tx, audit.Entry{Actor: by.String(), Action: "kiosk.new_code", AgencyID: agencyID, FacilityID: facilityID, Subject: "kiosk:" + kioskID})
	})
	return code, err
}

// KioskByName finds a kiosk of a facility by its name, for demo data.
func (s *Service) KioskByName(ctx context.Context, facilityID, name string) (Kiosk, error) {
	var k Kiosk
	err := s.db.Read().QueryRowContext(ctx, `SELECT id, facility_id, name, enrolled_at IS NOT NULL, revoked_at IS NOT NULL, created_at
		FROM kiosks WHERE facility_id = $1 AND name = $2 ORDER BY created_at LIMIT 1`, facilityID, name).
		Scan(&k.ID, &k.FacilityID, &k.Name, &k.Enrolled, &k.Revoked, &k.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return k, ErrNotFound
	}
	return k, err
}

// Kiosk returns a kiosk by id, enrolled or not, revoked or not, for the packages
// that keep things of a kiosk (visit stations).
func (s *Service) Kiosk(ctx context.Context, id string) (Kiosk, error) {
	var k Kiosk
	if !ids.Valid(id) {
		return k, ErrNotFound
	}
	err := s.db.Read().QueryRowContext(ctx, `SELECT id, facility_id, name, enrolled_at IS NOT NULL, revoked_at IS NOT NULL, created_at
		FROM kiosks WHERE id = $1`, id).Scan(&k.ID, &k.FacilityID, &k.Name, &k.Enrolled, &k.Revoked, &k.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return k, ErrNotFound
	}
	return k, err
}
