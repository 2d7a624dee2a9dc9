package web_test

import (
	"context"
	"github.com/kinlink/kinlink/internal/apptest"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/contacts"
	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/identity"
	"github.com/kinlink/kinlink/internal/ledger"
	"github.com/kinlink/kinlink/internal/mail/mailtest"
	"github.com/kinlink/kinlink/internal/visits"
)

// visitsOn are the settings of a server that offers video visits.
var visitsOn = map[string]string{"KINLINK_VIDEO_VISITS": "on"}

// eachVisitsEngine runs fn on every engine against a server offering visits.
func eachVisitsEngine(t *testing.T, fn func(t *testing.T, w *world)) {
	apptest.NeedMediaTools(t) // visits are recorded
	for _, e := range dbtest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) { fn(t, startWith(t, e.Setting, visitsOn)) })
	}
}

// staffBrowser enrols a staff member and signs them in on a browser of their own.
func staffBrowser(t *testing.T, w *world, email string, args ...string) *world {
	t.Helper()
	secret := w.enrolStaff(t, email, "staff pass 42!", args...)
	b := w.browser(t)
	if res := b.portalLogin(t, email, "staff pass 42!", secret); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("portal login of %s: %d", email, res.StatusCode)
	}
	return b
}

var (
	facilityField = regexp.MustCompile(`name="facility" value="([0-9a-f]+)"`)
	stationForm   = regexp.MustCompile(`/facility/visit-stations/([0-9a-f]+)`)
)

// scheduleOf opens a facility's schedule page (the first the staff member
// administers) and returns the facility's id.
func scheduleOf(t *testing.T, admin *world) (facilityID, page string) {
	t.Helper()
	res, page := admin.get(t, "/facility/visits/schedule")
	m := facilityField.FindStringSubmatch(page)
	if res.StatusCode != 200 || m == nil {
		t.Fatalf("schedule page: %d\n%s", res.StatusCode, page)
	}
	return m[1], page
}

// weekSchedule is a whole schedule form: one range on Mondays and one on
// Tuesdays, a closure, and the rules; more replaces or adds fields.
func weekSchedule(facilityID string, more url.Values) url.Values {
	f := url.Values{"facility": {facilityID}, "hours_rows": {"4"}, "closures_rows": {"2"},
		"hours.0.weekday": {"1"}, "hours.0.start": {"09:00"}, "hours.0.end": {"11:40"},
		"hours.1.weekday": {"2"}, "hours.1.start": {"13:00"}, "hours.1.end": {"16:00"},
		"closures.0.date": {time.Now().AddDate(0, 0, 10).Format(time.DateOnly)}, "closures.0.reason": {"Count day"},
		"slot_minutes": {"20"}, "min_lead_hours": {"24"}, "max_ahead_days": {"14"}, "weekly_limit": {"3"}, "cancel_hours": {"2"},
		"rate": {"0.12"}, "needs_approval": {"on"}}
	for k, v := range more {
		f[k] = v
	}
	return f
}

func TestVisitScheduleAndStationsInThePortal(t *testing.T) {
	eachVisitsEngine(t, func(t *testing.T, w *world) {
		setupAgency(t, w)
		admin := staffBrowser(t, w, "fsp.admin@example.org", "--role", "facility_admin", "--facility", "FSP")
		officer := staffBrowser(t, w, "fsp.officer@example.org", "--role", "visitation_officer", "--facility", "FSP")

		if _, page := admin.get(t, "/facility"); !strings.Contains(page, `id="visits-link"`) {
			t.Error("a facility administrator has no link to the visits pages")
		}
		fsp, page := scheduleOf(t, admin)
		for _, want := range []string{"Florida State Prison", "at most $0.16 a minute at this facility (FCC cap)", `name="slot_minutes" value="20"`,
			`name="min_lead_hours" value="24"`, `name="weekly_limit" value="3"`, `id="needs_approval" checked`} {
			if !strings.Contains(page, want) {
				t.Errorf("the schedule page before any is saved lacks %q", want)
			}
		}

		// A schedule saved is read back.
		closed := time.Now().AddDate(0, 0, 10).Format(time.DateOnly)
		res, _ := admin.post(t, "/facility/visits/schedule", weekSchedule(fsp, nil))
		if res.StatusCode != http.StatusSeeOther || !strings.Contains(res.Header.Get("Location"), "done=schedule") {
			t.Fatalf("saving a schedule: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		_, page = admin.get(t, res.Header.Get("Location"))
		for _, want := range []string{"The visit schedule is saved.", `name="hours.0.start" value="09:00"`, `name="hours.0.end" value="11:40"`,
			`name="hours.1.start" value="13:00"`, `<option value="2" selected>Tuesday</option>`, `name="closures.0.date" value="` + closed + `"`,
			`value="Count day"`, `name="rate" value="0.12"`, `name="cancel_hours" value="2"`, `id="needs_approval" checked`} {
			if !strings.Contains(page, want) {
				t.Errorf("the saved schedule read back lacks %q", want)
			}
		}

		// Faults are marked at their rows and fields, and everything typed stays.
		bad := weekSchedule(fsp, url.Values{
			"hours.2.weekday": {"3"}, "hours.2.start": {"16:00"}, "hours.2.end": {"09:00"}, // the row after a blank one
			"hours.3.weekday": {"4"}, "hours.3.start": {"9h"}, "hours.3.end": {"12:00"},
			"closures.1.date": {closed}, "closures.1.reason": {"Again"},
			"rate": {"0.20"}, "weekly_limit": {"lots"},
		})
		bad.Del("hours.1.weekday")
		bad.Del("hours.1.start")
		bad.Del("hours.1.end")
		res, page = admin.post(t, "/facility/visits/schedule", bad)
		if res.StatusCode != http.StatusBadRequest {
			t.Fatalf("a bad schedule: %d", res.StatusCode)
		}
		for _, want := range []string{
			"The schedule was not saved. Please fix the marked fields.",
			`id="hours-2-end-error">The end is not after the start.<`,
			`id="hours-3-start-error">Enter a time as HH:MM`,
			`id="closures-1-date-error">This is listed twice.<`,
			`id="rate-error">That is above the cap: at most $0.16 a minute at this facility (FCC cap).<`,
			`id="weekly-limit-error">Enter a whole number of visits from 1 to 21.<`,
			`name="hours.2.end" value="09:00"`, `name="hours.3.start" value="9h"`, `name="rate" value="0.20"`, `name="weekly_limit" value="lots"`,
			`value="Again"`,
		} {
			if !strings.Contains(page, want) {
				t.Errorf("the refused schedule lacks %q", want)
			}
		}
		if strings.Contains(page, `id="hours-0-start-error"`) || strings.Contains(page, `id="hours-1-`+`start-error"`) {
			t.Error("a good or blank row is marked")
		}
		if res, page := admin.post(t, "/facility/visits/schedule", weekSchedule(fsp, url.Values{"rate": {"twelve cents"}})); res.StatusCode != 400 ||
			!strings.Contains(page, `id="rate-error">Enter a price in dollars`) || !strings.Contains(page, `value="twelve cents"`) {
			t.Errorf("a price that is no price: %d", res.StatusCode)
		}
		// In Spanish too.
		admin.SetCookie("lang", "es")
		if _, page := admin.post(t, "/facility/visits/schedule", bad); !strings.Contains(page, "como máximo $0.16 por minuto en este centro (límite de la FCC)") ||
			!strings.Contains(page, "El horario no se guardó.") {
			t.Error("the Spanish page does not say the cap")
		}
		admin.SetCookie("lang", "en")
		if _, page := admin.get(t, "/facility/visits/schedule"); !strings.Contains(page, `name="rate" value="0.12"`) || !strings.Contains(page, `name="hours.1.start" value="13:00"`) {
			t.Error("a refused schedule changed the saved one")
		}

		// Stations: the facility's kiosks, each turned on with where it is.
		w.operator(t, "admin", "create-facility", "--agency", "FLDOC", "--code", "TINY", "--name", "Tiny County Jail",
			"--type", "jail", "--timezone", "America/Chicago", "--population", "80")
		admin.post(t, "/facility/kiosks", url.Values{"facility": {fsp}, "name": {"Unit B dayroom"}})
		_, page = admin.get(t, "/facility/visits/schedule")
		kiosk := stationForm.FindStringSubmatch(page)
		if kiosk == nil || !strings.Contains(page, "Unit B dayroom") || strings.Contains(page, `id="station-on-`+kiosk[1]+`" checked`) {
			t.Fatalf("the kiosk is not listed as a possible station:\n%s", page)
		}
		res, _ = admin.post(t, "/facility/visit-stations/"+kiosk[1], url.Values{"facility": {fsp}, "on": {"on"}, "location": {"Visiting room 2"}})
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("making a station: %d", res.StatusCode)
		}
		_, page = admin.get(t, "/facility/visits/schedule")
		if !strings.Contains(page, `id="station-on-`+kiosk[1]+`" checked`) || !strings.Contains(page, `value="Visiting room 2"`) {
			t.Error("the station is not read back")
		}
		if res, page := admin.post(t, "/facility/visit-stations/"+kiosk[1], url.Values{"facility": {fsp}, "on": {"on"}, "location": {strings.Repeat("x", 101)}}); res.StatusCode != 400 ||
			!strings.Contains(page, `aria-invalid="true"`) || !strings.Contains(page, strings.Repeat("x", 101)) {
			t.Errorf("a location too long: %d", res.StatusCode)
		}

		// A visitation officer sees the visits, not the schedule.
		if _, page := officer.get(t, "/facility"); !strings.Contains(page, `id="visits-link"`) {
			t.Error("a visitation officer has no link to the visits pages")
		}
		if res, page := officer.get(t, "/facility/visits"); res.StatusCode != 200 || strings.Contains(page, `id="visits-schedule-link"`) {
			t.Errorf("an officer's day page: %d, or it links the schedule", res.StatusCode)
		}
		if res, _ := officer.get(t, "/facility/visits/schedule?facility="+fsp); res.StatusCode != http.StatusForbidden {
			t.Errorf("an officer opens the schedule: %d", res.StatusCode)
		}
		if res, _ := officer.post(t, "/facility/visits/schedule", weekSchedule(fsp, url.Values{"rate": {"0"}})); res.StatusCode != http.StatusForbidden {
			t.Errorf("an officer saves the schedule: %d", res.StatusCode)
		}
		if res, _ := officer.post(t, "/facility/visit-stations/"+kiosk[1], url.Values{"facility": {fsp}}); res.StatusCode != http.StatusForbidden {
			t.Errorf("an officer turns a station off: %d", res.StatusCode)
		}
		if _, page := admin.get(t, "/facility/visits/schedule"); !strings.Contains(page, `name="rate" value="0.12"`) || !strings.Contains(page, `value="Visiting room 2"`) {
			t.Error("the officer's refused changes were saved")
		}

		// The agency's administrator picks among its facilities; a jail of 80
		// people has the cap of its size.
		agency := staffBrowser(t, w, "fl.admin@example.org", "--role", "agency_admin")
		_, page = agency.get(t, "/facility/visits/schedule")
		tiny := regexp.MustCompile(`<option value="([0-9a-f]+)">Tiny County Jail</option>`).FindStringSubmatch(page)
		if !strings.Contains(page, `id="facility-picker"`) || tiny == nil {
			t.Fatalf("no facility picker for the agency's administrator")
		}
		if _, page := agency.get(t, "/facility/visits/schedule?facility="+tiny[1]); !strings.Contains(page, "at most $0.25 a minute at this facility") {
			t.Error("the jail's page does not say its cap")
		}

		// Another agency's staff do not find the facility.
		w.operator(t, "admin", "create-agency", "--code", "TXDOC", "--name", "Texas DOC", "--state", "TX")
		w.operator(t, "admin", "create-staff", "--agency", "TXDOC", "--email", "tx.admin@example.org", "--name", "Tex", "--role", "agency_admin")
		txSecret := enrolFromMail(t, w, "tx.admin@example.org", "staff pass 43!")
		tx := w.browser(t)
		tx.portalLogin(t, "tx.admin@example.org", "staff pass 43!", txSecret)
		for _, path := range []string{"/facility/visits/schedule?facility=" + fsp, "/facility/visits?facility=" + fsp, "/facility/visits/requests?facility=" + fsp} {
			if res, page := tx.get(t, path); res.StatusCode != http.StatusNotFound || strings.Contains(page, "Florida State Prison") {
				t.Errorf("another agency's administrator opens %s: %d", path, res.StatusCode)
			}
		}
		if res, _ := tx.post(t, "/facility/visits/schedule", weekSchedule(fsp, url.Values{"rate": {"0"}})); res.StatusCode != http.StatusNotFound {
			t.Errorf("another agency's administrator saves the schedule: %d", res.StatusCode)
		}
		if res, _ := tx.post(t, "/facility/visit-stations/"+kiosk[1], url.Values{"facility": {fsp}}); res.StatusCode != http.StatusNotFound {
			t.Errorf("another agency's administrator turns a station off: %d", res.StatusCode)
		}
	})
}

// bookings is the visits service on the running server's database, standing in
// for the family's booking pages, which are not on this branch.
func bookings(t *testing.T, w *world) (*visits.Service, *database.DB) {
	t.Helper()
	d := serverDomain(t, w)
	return d.visits, d.db
}

// domain is the server's domain services, on its own database, for what a test
// does as staff or families outside the pages.
type domain struct {
	db     *database.DB
	id     *identity.Service
	fac    *facility.Service
	visits *visits.Service
}

func serverDomain(t *testing.T, w *world) domain {
	t.Helper()
	ctx := context.Background()
	db, err := database.Open(ctx, w.Env["KINLINK_DATABASE"])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	common, err := identity.LoadCommonPasswords()
	if err != nil {
		t.Fatal(err)
	}
	hasher := identity.NewHasher(identity.HashParams{MemoryKiB: 64, Time: 1, Threads: 1}, 2, 20, time.Second)
	id, err := identity.NewService(ctx, db, hasher, common, identity.DefaultConfig(), log)
	if err != nil {
		t.Fatal(err)
	}
	fac := facility.NewService(db, id, log)
	caps, err := visits.ParseRateCaps(visits.DefaultRateCaps)
	if err != nil {
		t.Fatal(err)
	}
	return domain{db: db, id: id, fac: fac, visits: visits.NewService(db, fac, contacts.NewService(db, fac), ledger.New(db), caps, nil)}
}

// allDayVisits makes kiosk a station of fsp ("Visiting room 2") and opens fsp for
// visits all day, every day, in 30-minute visits at $0.10 a minute, bookable at
// once; more sets other fields of the schedule form (needs_approval).
func allDayVisits(t *testing.T, admin *world, fsp, kiosk string, more url.Values) {
	t.Helper()
	admin.post(t, "/facility/visit-stations/"+kiosk, url.Values{"facility": {fsp}, "on": {"on"}, "location": {"Visiting room 2"}})
	every := url.Values{"facility": {fsp}, "hours_rows": {"7"}, "closures_rows": {"0"}, "slot_minutes": {"30"}, "min_lead_hours": {"0"},
		"max_ahead_days": {"14"}, "weekly_limit": {"3"}, "cancel_hours": {"1"}, "rate": {"0.10"}}
	for k, v := range more {
		every[k] = v
	}
	for d := range 7 {
		p := "hours." + string(rune('0'+d)) + "."
		every.Set(p+"weekday", string(rune('0'+d)))
		every.Set(p+"start", "00:00")
		every.Set(p+"end", "24:00")
	}
	if res, page := admin.post(t, "/facility/visits/schedule", every); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("the schedule: %d\n%s", res.StatusCode, page)
	}
}

// mailAbout waits for a mail to someone whose subject says something.
func mailAbout(t *testing.T, w *world, to, subject string) mailtest.Message {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range w.smtp.Messages() {
			if m.To[0] == to && strings.Contains(m.Subject, subject) {
				return m
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no mail to %s about %q", to, subject)
	return mailtest.Message{}
}

func TestOfficerDecidesAndCancelsVisits(t *testing.T) {
	eachVisitsEngine(t, func(t *testing.T, w *world) {
		contactID, admin := approvedContact(t, w, "ana@example.org")
		w.topUp(t, "20")
		officer := staffBrowser(t, w, "fsp.officer@example.org", "--role", "visitation_officer", "--facility", "FSP")

		// Every day open, 30-minute visits at $0.10 a minute ($3.00 held), one
		// station in the visiting room.
		fsp, _ := scheduleOf(t, admin)
		admin.post(t, "/facility/kiosks", url.Values{"facility": {fsp}, "name": {"Visit kiosk 1"}})
		_, page := admin.get(t, "/facility/visits/schedule")
		kiosk := stationForm.FindStringSubmatch(page)[1]
		allDayVisits(t, admin, fsp, kiosk, url.Values{"needs_approval": {"on"}})

		// The family books two visits the day after tomorrow.
		svc, db := bookings(t, w)
		var accountID string
		if err := db.Read().QueryRow("SELECT id FROM accounts WHERE email = $1", "ana@example.org").Scan(&accountID); err != nil {
			t.Fatal(err)
		}
		ny, _ := time.LoadLocation("America/New_York")
		day := time.Now().In(ny).AddDate(0, 0, 2)
		at := func(hour int) time.Time { return time.Date(day.Year(), day.Month(), day.Day(), hour, 0, 0, 0, ny) }
		first, err := svc.Book(context.Background(), accountID, visits.Booking{ContactID: contactID, Start: at(10), Minutes: 30, Key: "one"})
		if err != nil {
			t.Fatal(err)
		}
		second, err := svc.Book(context.Background(), accountID, visits.Booking{ContactID: contactID, Start: at(11), Minutes: 30, Key: "two"})
		if err != nil {
			t.Fatal(err)
		}
		if got := w.balance(t); got != "$14.00" {
			t.Fatalf("after two holds of $3.00 the wallet has %s", got)
		}

		// The officer sees both requests, with the resident's housing unit.
		if _, page := officer.get(t, "/facility"); !strings.Contains(page, `id="visits-link"`) {
			t.Error("the officer has no link to the visits")
		}
		res, page := officer.get(t, "/facility/visits/requests")
		for _, want := range []string{"José García", "A100", "B-12", "Ana García", "Visit kiosk 1", "Visiting room 2", "30 min",
			`id="approve-` + first.ID + `"`, `id="reject-` + second.ID + `"`, "10:00 E"} {
			if !strings.Contains(page, want) {
				t.Errorf("the requests page lacks %q", want)
			}
		}
		if res.StatusCode != 200 {
			t.Fatalf("requests: %d", res.StatusCode)
		}

		// Approve the first; the family is told.
		res, _ = officer.post(t, "/facility/visits/"+first.ID+"/approve", url.Values{"facility": {fsp}})
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("approve: %d", res.StatusCode)
		}
		mailAbout(t, w, "ana@example.org", "approved")

		// A rejection needs a reason; then the family is told why and the hold
		// comes back.
		res, page = officer.post(t, "/facility/visits/"+second.ID+"/reject", url.Values{"facility": {fsp}, "reason": {"  "}})
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(page, "Write a reason: the family will read it.") ||
			!strings.Contains(page, `id="reject-reason-`+second.ID+`-error"`) {
			t.Fatalf("a rejection without a reason: %d", res.StatusCode)
		}
		res, _ = officer.post(t, "/facility/visits/"+second.ID+"/reject", url.Values{"facility": {fsp}, "reason": {"The unit is on lockdown that day"}})
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("reject: %d", res.StatusCode)
		}
		if m := mailAbout(t, w, "ana@example.org", "not approved"); !strings.Contains(m.Text, "The unit is on lockdown that day") {
			t.Errorf("the rejection mail does not say why:\n%s", m.Text)
		}
		if got := w.balance(t); got != "$17.00" {
			t.Errorf("after the rejection the wallet has %s, want $17.00", got)
		}
		if _, page := officer.get(t, "/facility/visits/requests"); !strings.Contains(page, `id="no-requests"`) {
			t.Error("decided visits are still listed as requests")
		}
		// Deciding again is refused in words.
		if res, page := officer.post(t, "/facility/visits/"+first.ID+"/reject", url.Values{"facility": {fsp}, "reason": {"Changed my mind"}}); res.StatusCode != http.StatusConflict ||
			!strings.Contains(page, "This visit was already decided or cancelled.") {
			t.Errorf("deciding a decided visit: %d", res.StatusCode)
		}

		// The day's list, by housing unit, printable; the rejected one apart.
		date := day.Format(time.DateOnly)
		res, page = officer.get(t, "/facility/visits?facility="+fsp+"&day="+date)
		for _, want := range []string{"Housing unit <bdi>B-12</bdi>", "10:00–10:30", "José García", "Ana García", "Visiting room 2", "Scheduled",
			`id="visits-off"`, "The unit is on lockdown that day", `id="cancel-` + first.ID + `"`, `value="` + date + `"`} {
			if !strings.Contains(page, want) {
				t.Errorf("the day's list lacks %q", want)
			}
		}
		if res.StatusCode != 200 || strings.Contains(page, `id="cancel-`+second.ID+`"`) {
			t.Errorf("the day's list: %d, or it offers to cancel a rejected visit", res.StatusCode)
		}
		if css := w.Get(t, "/static/kinlink.css"); !strings.Contains(readBody(t, css), "@media print") {
			t.Error("the stylesheet has no print rules")
		}

		// Cancelling needs a reason too, then releases the hold and tells the family.
		res, page = officer.post(t, "/facility/visits/"+first.ID+"/cancel", url.Values{"facility": {fsp}, "day": {date}, "reason": {""}})
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(page, `id="cancel-reason-`+first.ID+`-error"`) || !strings.Contains(page, "10:00–10:30") {
			t.Fatalf("a cancellation without a reason: %d", res.StatusCode)
		}
		res, _ = officer.post(t, "/facility/visits/"+first.ID+"/cancel", url.Values{"facility": {fsp}, "day": {date}, "reason": {"Facility count"}})
		if res.StatusCode != http.StatusSeeOther || !strings.Contains(res.Header.Get("Location"), "day="+date) {
			t.Fatalf("cancel: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		if m := mailAbout(t, w, "ana@example.org", "cancelled"); !strings.Contains(m.Text, "Facility count") {
			t.Errorf("the cancellation mail does not say why:\n%s", m.Text)
		}
		if got := w.balance(t); got != "$20.00" {
			t.Errorf("after the cancellation the wallet has %s, want $20.00", got)
		}

		// Another facility's officer is refused; another agency's staff find nothing.
		lci := staffBrowser(t, w, "lci.officer@example.org", "--role", "visitation_officer", "--facility", "LCI")
		if res, _ := lci.get(t, "/facility/visits/requests?facility="+fsp); res.StatusCode != http.StatusForbidden {
			t.Errorf("another facility's officer opens the requests: %d", res.StatusCode)
		}
		w.operator(t, "admin", "create-agency", "--code", "TXDOC", "--name", "Texas DOC", "--state", "TX")
		w.operator(t, "admin", "create-staff", "--agency", "TXDOC", "--email", "tx.admin@example.org", "--name", "Tex", "--role", "agency_admin")
		txSecret := enrolFromMail(t, w, "tx.admin@example.org", "staff pass 43!")
		tx := w.browser(t)
		tx.portalLogin(t, "tx.admin@example.org", "staff pass 43!", txSecret)
		for _, path := range []string{"/facility/visits/" + first.ID + "/approve", "/facility/visits/" + second.ID + "/cancel"} {
			if res, _ := tx.post(t, path, url.Values{"reason": {"x"}}); res.StatusCode != http.StatusNotFound {
				t.Errorf("another agency's administrator posts %s: %d", path, res.StatusCode)
			}
		}
		if out := w.operator(t, "ledger", "verify"); !strings.Contains(out, "ledger verified") {
			t.Errorf("ledger verify: %s", out)
		}
	})
}

// Where the server does not offer visits, their pages do not exist and the
// portal does not link them.
func TestVisitPagesOnlyWhereVisitsAreOffered(t *testing.T) {
	w := start(t, dbtest.Engines(t)[0].Setting)
	setupAgency(t, w)
	admin := staffBrowser(t, w, "fl.admin@example.org", "--role", "agency_admin")
	if _, page := admin.get(t, "/facility"); strings.Contains(page, `id="visits-link"`) {
		t.Error("the portal links visits the server does not offer")
	}
	for _, path := range []string{"/facility/visits", "/facility/visits/requests", "/facility/visits/schedule"} {
		if res, _ := admin.get(t, path); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s without visits: %d", path, res.StatusCode)
		}
	}
	if res, _ := admin.post(t, "/facility/visits/schedule", url.Values{}); res.StatusCode != http.StatusNotFound {
		t.Errorf("POST of a schedule without visits: %d", res.StatusCode)
	}
}
