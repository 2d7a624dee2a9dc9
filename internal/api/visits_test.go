package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/apptest"
	"github.com/kinlink/kinlink/internal/contacts"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/identity"
	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/ledger"
	"github.com/kinlink/kinlink/internal/visits"
)

// visitsWorld is a server offering video visits, and the facility staff's side of
// them reached through the domain services on the same database: Florida State
// Prison (New York time) with one visit station, and two families, Ana visiting
// José (A100) and Ben visiting María (A200), both approved visitors.
type visitsWorld struct {
	*world
	visits   *visits.Service
	admin    facility.Access
	fsp      facility.Facility
	loc      *time.Location
	schedule visits.Schedule

	tokenA, contactA string // Ana, with José
	tokenB, contactB string // Ben, with María
}

func startVisits(t *testing.T, setting string) *visitsWorld {
	t.Helper()
	return startVisitsWith(t, setting, nil)
}

// startVisitsWith is startVisits with settings of its own (an instance's name).
func startVisitsWith(t *testing.T, setting string, env map[string]string) *visitsWorld {
	t.Helper()
	ctx := context.Background()
	apptest.NeedMediaTools(t) // visits are recorded
	full := map[string]string{"KINLINK_VIDEO_VISITS": "on"}
	for k, v := range env {
		full[k] = v
	}
	w := start(t, setting, full)
	vw := &visitsWorld{world: w}
	vw.tokenA, vw.contactA = contactOfJose(t, w)
	file := filepath.Join(t.TempDir(), "roster.csv")
	os.WriteFile(file, []byte("resident_id,last_name,first_name,facility_code,housing_unit,status,restrictions\n"+
		"A100,García,José,FSP,B-12,active,\nA200,López,María,FSP,C-3,active,\n"), 0o600)
	w.Command(t, "roster", "import", "--agency", "FLDOC", file, "--apply")
	vw.tokenB = w.register(t, "ben@example.org")
	_, found := w.JSON(t, "GET", "/api/v1/residents?agency=FLDOC&resident_id=A200", nil, bearer(vw.tokenB)...)
	_, c := w.JSON(t, "POST", "/api/v1/contacts", map[string]any{"resident": found["residents"].([]any)[0].(map[string]any)["id"]}, bearer(vw.tokenB)...)
	vw.contactB = c["id"].(string)

	db := dbtest.Open(t, w.Env["KINLINK_DATABASE"])
	log := slog.New(slog.DiscardHandler)
	common, err := identity.LoadCommonPasswords()
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity.NewService(ctx, db, identity.NewHasher(identity.HashParams{MemoryKiB: 64, Time: 1, Threads: 1}, 1, 4, time.Second), common, identity.DefaultConfig(), log)
	if err != nil {
		t.Fatal(err)
	}
	fac := facility.NewService(db, id, log)
	cs := contacts.NewService(db, fac)
	caps, err := visits.ParseRateCaps(visits.DefaultRateCaps)
	if err != nil {
		t.Fatal(err)
	}
	vw.visits = visits.NewService(db, fac, cs, ledger.New(db), caps, nil)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	agency, err := fac.AgencyByCode(ctx, "FLDOC")
	must(err)
	vw.fsp, err = fac.FacilityByCode(ctx, agency.ID, "FSP")
	must(err)
	vw.loc, err = time.LoadLocation(vw.fsp.TimeZone)
	must(err)
	accountID, err := id.EnsureStaff(ctx, "visits@example.org", "Visits Office", "staff pass 42!", "JBSWY3DPEHPK3PXP")
	must(err)
	must(fac.GrantRole(ctx, facility.Operator, agency.ID, accountID, facility.AgencyAdmin, ""))
	vw.admin, err = fac.AccessOf(ctx, accountID)
	must(err)
	for _, contact := range []string{vw.contactA, vw.contactB} {
		must(cs.Decide(ctx, vw.admin, contact, true, ""))
	}
	kiosk, _, err := fac.CreateKiosk(ctx, facility.Operator, agency.ID, vw.fsp.ID, "Unit B")
	must(err)
	must(vw.visits.SetStation(ctx, vw.admin, kiosk.ID, true, "Housing unit B"))

	// Every day 09:00–12:00 on the facility's clock: nine 20-minute slots at $0.16
	// a minute ($3.20 each), booked at once, two a week per resident.
	vw.schedule = visits.Schedule{SlotMinutes: 20, MinLeadHours: 24, MaxAheadDays: 14, WeeklyLimit: 2, RateMills: 160, CancelHours: 1}
	for d := time.Sunday; d <= time.Saturday; d++ {
		vw.schedule.Hours = append(vw.schedule.Hours, visits.Hours{Weekday: d, Start: 9 * 60, End: 12 * 60})
	}
	vw.setSchedule(t, vw.schedule)
	return vw
}

func (vw *visitsWorld) setSchedule(t *testing.T, s visits.Schedule) {
	t.Helper()
	if err := vw.visits.SetSchedule(context.Background(), vw.admin, vw.fsp.ID, s); err != nil {
		t.Fatalf("set schedule: %v", err)
	}
}

// day is the facility's date days after its today.
func (vw *visitsWorld) day(days int) visits.Date {
	return visits.DateOf(time.Now().In(vw.loc)).AddDays(days)
}

// at is a time of a day on the facility's clock, as the API writes it.
func (vw *visitsWorld) at(d visits.Date, hour, minute int) string {
	return time.Date(d.Year, d.Month, d.Day, hour, minute, 0, 0, vw.loc).Format(time.RFC3339)
}

func (vw *visitsWorld) balance(t *testing.T, token string) float64 {
	t.Helper()
	res, wallet := vw.JSON(t, "GET", "/api/v1/wallet", nil, bearer(token)...)
	if res.StatusCode != 200 {
		t.Fatalf("wallet: %d %s", res.StatusCode, res.Raw)
	}
	return wallet["balance_cents"].(float64)
}

func (vw *visitsWorld) topUp(t *testing.T, token string, cents int) {
	t.Helper()
	res, _ := vw.JSON(t, "POST", "/api/v1/wallet/top-ups", map[string]any{"amount_cents": cents, "payment_token": "tok_visa"}, append(bearer(token), "Idempotency-Key", ids.New())...)
	if res.StatusCode != 201 {
		t.Fatalf("top-up: %d %s", res.StatusCode, res.Raw)
	}
}

func (vw *visitsWorld) book(t *testing.T, token, key, contact, start string) (*apptest.Response, map[string]any) {
	t.Helper()
	return vw.JSON(t, "POST", "/api/v1/visits", map[string]any{"contact_id": contact, "start": start, "minutes": 20}, append(bearer(token), "Idempotency-Key", key)...)
}

func TestVisitsByAPI(t *testing.T) {
	eachEngineVisits(t, func(t *testing.T, vw *visitsWorld) {
		a, b := bearer(vw.tokenA), bearer(vw.tokenB)
		d1, d2 := vw.day(2), vw.day(9) // two days in two different weeks

		// Ben has no money yet: the booking is refused and nothing moves.
		if res, body := vw.book(t, vw.tokenB, "poor", vw.contactB, vw.at(d1, 11, 40)); res.StatusCode != 402 || errCode(body) != "insufficient_balance" {
			t.Fatalf("a booking without money: %d %s", res.StatusCode, res.Raw)
		}
		if got := vw.balance(t, vw.tokenB); got != 0 {
			t.Errorf("Ben's balance after a refused booking: %v", got)
		}
		vw.topUp(t, vw.tokenA, 2000)
		vw.topUp(t, vw.tokenB, 500)

		// The free slots of a day, on the facility's clock, with their price.
		res, offer := vw.JSON(t, "GET", fmt.Sprintf("/api/v1/contacts/%s/visit-slots?from=%s&days=1", vw.contactA, d1), nil, a...)
		if res.StatusCode != 200 || offer["facility"] != "Florida State Prison" || offer["time_zone"] != "America/New_York" || offer["rate_mills"] != float64(160) {
			t.Fatalf("slots: %d %s", res.StatusCode, res.Raw)
		}
		slots := offer["slots"].([]any)
		if len(slots) != 9 {
			t.Fatalf("%d slots on %s, want 9: %s", len(slots), d1, res.Raw)
		}
		first := slots[0].(map[string]any)
		_, offset := time.Date(d1.Year, d1.Month, d1.Day, 9, 0, 0, 0, vw.loc).Zone()
		wantOffset := fmt.Sprintf("-%02d:00", -offset/3600) // -05:00 in winter, -04:00 in summer
		if first["start"] != d1.String()+"T09:00:00"+wantOffset || first["end"] != d1.String()+"T09:20:00"+wantOffset ||
			first["minutes"] != float64(20) || first["price_cents"] != float64(320) {
			t.Errorf("the first slot: %v, want 09:00%s to 09:20, 320 cents", first, wantOffset)
		}

		// Booking holds the price; a retry with the same key is the same visit and
		// holds nothing more, even with the start written in UTC.
		res, visit := vw.book(t, vw.tokenA, "v1", vw.contactA, first["start"].(string))
		if res.StatusCode != 201 || visit["state"] != "scheduled" || visit["held_cents"] != float64(320) || visit["charged_cents"] != float64(0) ||
			visit["start"] != first["start"] || visit["end"] != first["end"] || visit["time_zone"] != "America/New_York" ||
			visit["contact_id"] != vw.contactA || visit["reason"] != "" {
			t.Fatalf("booking: %d %s", res.StatusCode, res.Raw)
		}
		if got := vw.balance(t, vw.tokenA); got != 2000-320 {
			t.Errorf("Ana's balance after booking: %v, want 1680", got)
		}
		start, _ := time.Parse(time.RFC3339, first["start"].(string))
		res, again := vw.book(t, vw.tokenA, "v1", vw.contactA, start.UTC().Format(time.RFC3339))
		if res.StatusCode != 201 || again["id"] != visit["id"] || again["start"] != visit["start"] {
			t.Errorf("the retried booking: %d %s", res.StatusCode, res.Raw)
		}
		if res, body := vw.book(t, vw.tokenA, "v1", vw.contactA, vw.at(d1, 9, 20)); res.StatusCode != 409 || errCode(body) != "idempotency_key_reused" {
			t.Errorf("the key again for another slot: %d %s", res.StatusCode, res.Raw)
		}
		if got := vw.balance(t, vw.tokenA); got != 1680 {
			t.Errorf("Ana's balance after the retries: %v, want one hold (1680)", got)
		}
		// The only station is taken at 09:00 now: the slot is no longer offered.
		_, offer = vw.JSON(t, "GET", fmt.Sprintf("/api/v1/contacts/%s/visit-slots?from=%s&days=1", vw.contactB, d1), nil, b...)
		if slots := offer["slots"].([]any); len(slots) != 8 || slots[0].(map[string]any)["start"] == first["start"] {
			t.Errorf("the slots after a booking: %v", slots)
		}

		// Two families ask for the only station's 10:00 at once: one gets it, the
		// other is told and keeps their money.
		results := raceBookings(t, vw, []booking{
			{vw.tokenA, "race-a", vw.contactA, vw.at(d1, 10, 0)},
			{vw.tokenB, "race-b", vw.contactB, vw.at(d1, 10, 0)},
		})
		won := -1
		for i, r := range results {
			switch {
			case r.StatusCode == 201 && won == -1:
				won = i
			case r.StatusCode == 409 && errCode(r.body) == "slot_taken":
			default:
				t.Errorf("booking %d of the race: %d %s", i, r.StatusCode, r.Raw)
			}
		}
		if won == -1 {
			t.Fatalf("no booking of the race won")
		}
		balanceA, balanceB := 1680.0, 500.0
		if won == 0 {
			balanceA -= 320
		} else {
			balanceB -= 320
		}
		if got := vw.balance(t, vw.tokenA); got != balanceA {
			t.Errorf("Ana's balance after the race: %v, want %v", got, balanceA)
		}
		if got := vw.balance(t, vw.tokenB); got != balanceB {
			t.Errorf("Ben's balance after the race: %v, want %v", got, balanceB)
		}

		// Two visits a week for José: a third that week is refused.
		var d2Visits []string
		for i, minute := range []int{0, 20} {
			res, v := vw.book(t, vw.tokenA, fmt.Sprint("w", i), vw.contactA, vw.at(d2, 9, minute))
			if res.StatusCode != 201 {
				t.Fatalf("visit %d of the week: %d %s", i+1, res.StatusCode, res.Raw)
			}
			d2Visits = append(d2Visits, v["id"].(string))
		}
		if res, body := vw.book(t, vw.tokenA, "w2", vw.contactA, vw.at(d2, 9, 40)); res.StatusCode != 409 || errCode(body) != "weekly_limit" {
			t.Errorf("a third visit in a week: %d %s", res.StatusCode, res.Raw)
		}
		balanceA -= 640
		if got := vw.balance(t, vw.tokenA); got != balanceA {
			t.Errorf("Ana's balance after the week's visits: %v, want %v", got, balanceA)
		}

		// What the family reads: their visits, the coming ones first by start.
		res, list := vw.JSON(t, "GET", "/api/v1/visits", nil, a...)
		if res.StatusCode != 200 {
			t.Fatalf("visits: %d %s", res.StatusCode, res.Raw)
		}
		if n := len(list["visits"].([]any)); n != 3+boolInt(won == 0) || list["visits"].([]any)[0].(map[string]any)["id"] != visit["id"] {
			t.Errorf("Ana's visits: %s", res.Raw)
		}
		if res, list := vw.JSON(t, "GET", "/api/v1/visits?contact_id="+vw.contactB, nil, a...); res.StatusCode != 200 || len(list["visits"].([]any)) != 0 {
			t.Errorf("Ana's visits with Ben's contact: %d %s", res.StatusCode, res.Raw)
		}
		if res, one := vw.JSON(t, "GET", "/api/v1/visits/"+visit["id"].(string), nil, a...); res.StatusCode != 200 || one["id"] != visit["id"] || one["start"] != visit["start"] {
			t.Errorf("Ana's visit: %d %s", res.StatusCode, res.Raw)
		}

		// Another family's visit does not exist for Ben.
		res, listB := vw.JSON(t, "GET", "/api/v1/visits", nil, b...)
		if res.StatusCode != 200 || strings.Contains(res.Raw, visit["id"].(string)) || len(listB["visits"].([]any)) != boolInt(won == 1) {
			t.Errorf("Ben's visits: %d %s", res.StatusCode, res.Raw)
		}
		for _, path := range []string{"/api/v1/visits/" + visit["id"].(string), "/api/v1/visits/" + ids.New(), "/api/v1/visits/nonsense"} {
			if res, body := vw.JSON(t, "GET", path, nil, b...); res.StatusCode != 404 || errCode(body) != "not_found" {
				t.Errorf("GET %s as Ben: %d %s", path, res.StatusCode, res.Raw)
			}
		}
		if res, body := vw.JSON(t, "POST", "/api/v1/visits/"+visit["id"].(string)+"/cancel", nil, b...); res.StatusCode != 404 || errCode(body) != "not_found" {
			t.Errorf("Ben cancelling Ana's visit: %d %s", res.StatusCode, res.Raw)
		}
		if res, body := vw.JSON(t, "GET", "/api/v1/contacts/"+vw.contactA+"/visit-slots", nil, b...); res.StatusCode != 404 || errCode(body) != "not_found" {
			t.Errorf("the slots of Ana's contact for Ben: %d %s", res.StatusCode, res.Raw)
		}
		if res, body := vw.book(t, vw.tokenB, "theirs", vw.contactA, vw.at(d1, 11, 0)); res.StatusCode != 404 || errCode(body) != "not_found" {
			t.Errorf("Ben booking with Ana's contact: %d %s", res.StatusCode, res.Raw)
		}

		// Cancelling: too late within the facility's cutoff (72 hours now); a visit
		// further ahead is cancelled and its hold comes back.
		late := vw.schedule
		late.CancelHours = 72
		vw.setSchedule(t, late)
		if res, body := vw.JSON(t, "POST", "/api/v1/visits/"+visit["id"].(string)+"/cancel", nil, a...); res.StatusCode != 409 || errCode(body) != "too_late" {
			t.Errorf("a cancellation within the cutoff: %d %s", res.StatusCode, res.Raw)
		}
		res, cancelled := vw.JSON(t, "POST", "/api/v1/visits/"+d2Visits[0]+"/cancel", nil, a...)
		if res.StatusCode != 200 || cancelled["state"] != "cancelled" || cancelled["id"] != d2Visits[0] {
			t.Errorf("a cancellation: %d %s", res.StatusCode, res.Raw)
		}
		balanceA += 320
		if got := vw.balance(t, vw.tokenA); got != balanceA {
			t.Errorf("Ana's balance after cancelling: %v, want %v", got, balanceA)
		}
		if res, one := vw.JSON(t, "GET", "/api/v1/visits/"+d2Visits[0], nil, a...); res.StatusCode != 200 || one["state"] != "cancelled" || one["held_cents"] != float64(320) {
			t.Errorf("the cancelled visit: %d %s", res.StatusCode, res.Raw)
		}
		if res, body := vw.JSON(t, "POST", "/api/v1/visits/"+d2Visits[0]+"/cancel", nil, a...); res.StatusCode != 409 || errCode(body) != "already_decided" {
			t.Errorf("cancelling twice: %d %s", res.StatusCode, res.Raw)
		}
		// The cancelled visit no longer counts against the week.
		if res, _ := vw.book(t, vw.tokenA, "w3", vw.contactA, vw.at(d2, 11, 0)); res.StatusCode != 201 {
			t.Errorf("a visit in place of the cancelled one: %d %s", res.StatusCode, res.Raw)
		}
		if out := vw.Command(t, "ledger", "verify"); !strings.Contains(out, "ledger verified") {
			t.Errorf("ledger verify: %s", out)
		}
	})
}

// What each mistake in a visit request is called, and which field it names.
func TestVisitRequestMistakesAreNamed(t *testing.T) {
	vw := startVisits(t, dbtest.Engines(t)[0].Setting)
	vw.topUp(t, vw.tokenA, 500)
	d1 := vw.day(2)
	s := scenarios{w: vw.world, tokens: map[string]string{"family": vw.tokenA},
		values: map[string]string{"contact": vw.contactA, "unknown": ids.New(), "d1": d1.String(), "nine": vw.at(d1, 9, 0),
			"ninefive": vw.at(d1, 9, 5), "far": vw.at(vw.day(30), 9, 0)}}
	key := []string{"Idempotency-Key", "mistakes"}
	s.run(t, []scenario{
		{name: "slots without a token", who: "anonymous", method: "GET", path: "/api/v1/contacts/{contact}/visit-slots", status: 401, code: "unauthenticated"},
		{name: "visits without a token", who: "anonymous", method: "GET", path: "/api/v1/visits", status: 401, code: "unauthenticated"},
		{name: "a booking without a token", who: "anonymous", method: "POST", path: "/api/v1/visits", json: map[string]any{}, status: 401, code: "unauthenticated"},
		{name: "a cancellation without a token", who: "anonymous", method: "POST", path: "/api/v1/visits/{unknown}/cancel", status: 401, code: "unauthenticated"},
		{name: "slots from no date", who: "family", method: "GET", path: "/api/v1/contacts/{contact}/visit-slots?from=2026-02-30",
			status: 400, code: "invalid_request", fields: map[string]string{"from": "invalid"}},
		{name: "slots of no days", who: "family", method: "GET", path: "/api/v1/contacts/{contact}/visit-slots?days=0",
			status: 400, code: "invalid_request", fields: map[string]string{"days": "range"}},
		{name: "slots of 63 days", who: "family", method: "GET", path: "/api/v1/contacts/{contact}/visit-slots?days=63",
			status: 400, code: "invalid_request", fields: map[string]string{"days": "range"}},
		{name: "slots of 'a week'", who: "family", method: "GET", path: "/api/v1/contacts/{contact}/visit-slots?days=week",
			status: 400, code: "invalid_request", fields: map[string]string{"days": "range"}},
		{name: "slots of 62 days", who: "family", method: "GET", path: "/api/v1/contacts/{contact}/visit-slots?days=62", status: 200, holds: "{nine}"},
		{name: "slots by default", who: "family", method: "GET", path: "/api/v1/contacts/{contact}/visit-slots", status: 200, holds: `"time_zone":"America/New_York"`},
		{name: "slots of no one", who: "family", method: "GET", path: "/api/v1/contacts/{unknown}/visit-slots", status: 404, code: "not_found"},
		{name: "a booking of nothing", who: "family", method: "POST", path: "/api/v1/visits", json: map[string]any{}, headers: key,
			status: 400, code: "invalid_request", fields: map[string]string{"contact_id": "required", "start": "required", "minutes": "required"}},
		{name: "a booking 'tomorrow'", who: "family", method: "POST", path: "/api/v1/visits", json: map[string]any{"contact_id": "{contact}", "start": "tomorrow", "minutes": 20},
			headers: key, status: 400, code: "invalid_request", fields: map[string]string{"start": "invalid"}},
		{name: "a booking of 'twenty' minutes", who: "family", method: "POST", path: "/api/v1/visits", json: map[string]any{"contact_id": "{contact}", "start": "{nine}", "minutes": "twenty"},
			headers: key, status: 400, code: "invalid_request", fields: map[string]string{"minutes": "wrong_type"}},
		{name: "a booking at no slot's start", who: "family", method: "POST", path: "/api/v1/visits", json: map[string]any{"contact_id": "{contact}", "start": "{ninefive}", "minutes": 20},
			headers: key, status: 400, code: "invalid_request", fields: map[string]string{"start": "not_offered"}},
		{name: "a booking of another length", who: "family", method: "POST", path: "/api/v1/visits", json: map[string]any{"contact_id": "{contact}", "start": "{nine}", "minutes": 30},
			headers: key, status: 400, code: "invalid_request", fields: map[string]string{"start": "not_offered"}},
		{name: "a booking past the window", who: "family", method: "POST", path: "/api/v1/visits", json: map[string]any{"contact_id": "{contact}", "start": "{far}", "minutes": 20},
			headers: key, status: 400, code: "invalid_request", fields: map[string]string{"start": "not_offered"}},
		{name: "a booking with no one", who: "family", method: "POST", path: "/api/v1/visits", json: map[string]any{"contact_id": "{unknown}", "start": "{nine}", "minutes": 20},
			headers: key, status: 404, code: "not_found"},
		{name: "a booking with a bad key", who: "family", method: "POST", path: "/api/v1/visits", json: map[string]any{"contact_id": "{contact}", "start": "{nine}", "minutes": 20},
			headers: []string{"Idempotency-Key", "clé"}, status: 400, code: "invalid_idempotency_key", fields: map[string]string{"Idempotency-Key": "invalid"}},
		{name: "a booking as a form", who: "family", method: "POST", path: "/api/v1/visits", raw: "contact_id=x", headers: []string{"Content-Type", "application/x-www-form-urlencoded"},
			status: 400, code: "invalid_request", fields: map[string]string{"body": "invalid_json"}},
		{name: "a cancellation of no visit", who: "family", method: "POST", path: "/api/v1/visits/{unknown}/cancel", status: 404, code: "not_found"},
		{name: "a booking", who: "family", method: "POST", path: "/api/v1/visits", json: map[string]any{"contact_id": "{contact}", "start": "{nine}", "minutes": 20, "note": "ignored"},
			headers: key, status: 201, holds: `"start":"{nine}"`},
	})
	if got := vw.balance(t, vw.tokenA); got != 500-320 {
		t.Errorf("balance after the mistakes and one booking: %v, want 180", got)
	}
}

// A contact the facility restricts from video, or has not approved as a visitor,
// books nothing; the family is told why.
func TestVisitRefusalsOfTheContact(t *testing.T) {
	vw := startVisits(t, dbtest.Engines(t)[0].Setting)
	vw.topUp(t, vw.tokenA, 500)
	file := filepath.Join(t.TempDir(), "roster.csv")
	os.WriteFile(file, []byte("resident_id,last_name,first_name,facility_code,housing_unit,status,restrictions\n"+
		"A100,García,José,FSP,B-12,active,no_video\nA200,López,María,FSP,C-3,active,\n"), 0o600)
	vw.Command(t, "roster", "import", "--agency", "FLDOC", file, "--apply")
	start := vw.at(vw.day(2), 9, 0)
	if res, body := vw.book(t, vw.tokenA, "nv", vw.contactA, start); res.StatusCode != 403 || errCode(body) != "no_video" {
		t.Errorf("a booking with a person restricted from video: %d %s", res.StatusCode, res.Raw)
	}
	if res, body := vw.JSON(t, "GET", "/api/v1/contacts/"+vw.contactA+"/visit-slots", nil, bearer(vw.tokenA)...); res.StatusCode != 403 || errCode(body) != "no_video" {
		t.Errorf("slots with a person restricted from video: %d %s", res.StatusCode, res.Raw)
	}
	if got := vw.balance(t, vw.tokenA); got != 500 {
		t.Errorf("balance after refusals: %v", got)
	}
	// Carol asks to visit María; the agency approves visitors first.
	tokenC := vw.register(t, "carol@example.org")
	_, found := vw.JSON(t, "GET", "/api/v1/residents?agency=FLDOC&resident_id=A200", nil, bearer(tokenC)...)
	_, c := vw.JSON(t, "POST", "/api/v1/contacts", map[string]any{"resident": found["residents"].([]any)[0].(map[string]any)["id"]}, bearer(tokenC)...)
	if c["status"] != "pending" {
		t.Fatalf("Carol's contact: %v, want pending (agencies approve visitors by default)", c["status"])
	}
	if res, body := vw.book(t, tokenC, "np", c["id"].(string), start); res.StatusCode != 403 || errCode(body) != "contact_not_approved" {
		t.Errorf("a booking by a visitor not yet approved: %d %s", res.StatusCode, res.Raw)
	}
}

// Where the server does not offer video visits, their paths do not exist.
func TestVisitsOffAreNotFound(t *testing.T) {
	w := start(t, dbtest.Engines(t)[0].Setting, nil)
	token := w.register(t, "ana@example.org")
	for _, route := range []struct{ method, path string }{
		{"GET", "/api/v1/contacts/" + ids.New() + "/visit-slots"}, {"POST", "/api/v1/visits"}, {"GET", "/api/v1/visits"},
		{"GET", "/api/v1/visits/" + ids.New()}, {"POST", "/api/v1/visits/" + ids.New() + "/cancel"},
	} {
		var body any
		if route.method == "POST" {
			body = map[string]any{}
		}
		if res, b := w.JSON(t, route.method, route.path, body, bearer(token)...); res.StatusCode != 404 || errCode(b) != "not_found" {
			t.Errorf("%s %s with visits off: %d %s", route.method, route.path, res.StatusCode, res.Raw)
		}
	}
}

// eachEngineVisits runs fn on a visits world on SQLite and, when configured,
// PostgreSQL.
func eachEngineVisits(t *testing.T, fn func(t *testing.T, vw *visitsWorld)) {
	for _, e := range dbtest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) { fn(t, startVisits(t, e.Setting)) })
	}
}

type booking struct{ token, key, contact, start string }

type raced struct {
	*apptest.Response
	body map[string]any
}

// raceBookings sends bookings at the same moment and returns their answers, each
// checked against the OpenAPI document.
func raceBookings(t *testing.T, vw *visitsWorld, list []booking) []raced {
	t.Helper()
	out := make([]raced, len(list))
	reqs := make([]*http.Request, len(list))
	var ready, wg sync.WaitGroup
	ready.Add(len(list))
	gate := make(chan struct{})
	for i, b := range list {
		body, _ := json.Marshal(map[string]any{"contact_id": b.contact, "start": b.start, "minutes": 20})
		req, _ := http.NewRequest("POST", vw.URL+"/api/v1/visits", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+b.token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", b.key)
		reqs[i] = req
		wg.Go(func() {
			ready.Done()
			<-gate
			res, err := vw.Client.Do(req)
			if err != nil {
				t.Errorf("booking %d: %v", i, err)
				return
			}
			raw, _ := io.ReadAll(res.Body)
			res.Body.Close()
			out[i].Response = &apptest.Response{Response: res, Raw: string(raw)}
			json.Unmarshal(raw, &out[i].body)
		})
	}
	ready.Wait()
	close(gate)
	wg.Wait()
	for i, r := range out {
		if r.Response == nil {
			t.FailNow()
		}
		if vw.OnResponse != nil {
			vw.OnResponse(t, reqs[i], r.Response)
		}
	}
	return out
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
