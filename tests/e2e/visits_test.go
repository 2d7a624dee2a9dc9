package e2e

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/kinlink/kinlink/internal/apptest"
	"github.com/kinlink/kinlink/internal/contacts"
	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/identity"
	"github.com/kinlink/kinlink/internal/ledger"
	"github.com/kinlink/kinlink/internal/visits"
)

// openDemoVisits does what the North Unit's administrator will do from the portal:
// the demo kiosk becomes a visit station, and visits are offered every day 09:00–11:00.
func openDemoVisits(t *testing.T, in *apptest.Instance) {
	t.Helper()
	ctx := context.Background()
	db, err := database.Open(ctx, in.Env["KINLINK_DATABASE"])
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	common, err := identity.LoadCommonPasswords()
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity.NewService(ctx, db, identity.NewHasher(identity.HashParams{MemoryKiB: 64, Time: 1, Threads: 1}, 1, 4, time.Second),
		common, identity.DefaultConfig(), log)
	if err != nil {
		t.Fatal(err)
	}
	fac := facility.NewService(db, id, log)
	caps, _ := visits.ParseRateCaps(visits.DefaultRateCaps)
	svc := visits.NewService(db, fac, contacts.NewService(db, fac), ledger.New(db), caps, nil)
	agency, err := fac.AgencyByCode(ctx, "DEMO")
	if err != nil {
		t.Fatal(err)
	}
	north, err := fac.FacilityByCode(ctx, agency.ID, "NORTH")
	if err != nil {
		t.Fatal(err)
	}
	kiosk, err := fac.KioskByName(ctx, north.ID, "Demo kiosk")
	if err != nil {
		t.Fatal(err)
	}
	acct, err := id.AccountByEmail(ctx, "facility.admin@example.org")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := fac.AccessOf(ctx, acct.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.SetStation(ctx, admin, kiosk.ID, true, "Visiting room"); err != nil {
		t.Fatal(err)
	}
	sch := visits.Schedule{SlotMinutes: 20, MinLeadHours: 24, MaxAheadDays: 14, WeeklyLimit: 3, RateMills: 160, CancelHours: 1}
	for day := time.Sunday; day <= time.Saturday; day++ {
		sch.Hours = append(sch.Hours, visits.Hours{Weekday: day, Start: 9 * 60, End: 11 * 60})
	}
	if err := svc.SetSchedule(ctx, admin, north.ID, sch); err != nil {
		t.Fatal(err)
	}
}

// María books a video visit on a phone 360 px wide whose clock is Tokyo's: the
// free times, the confirmation, the visit and her visits fit the width and pass
// axe in English and Spanish, and each time on the facility's clock (Central
// time) has hers beside it.
func TestBookingAVideoVisitOnAPhone(t *testing.T) {
	b := newBrowser(t)
	in := apptest.Start(t, "demo", "sqlite:"+filepath.Join(t.TempDir(), "kinlink.db"), map[string]string{"KINLINK_VIDEO_VISITS": "on"})
	in.WaitStdout(t, "Stop with Ctrl+C")
	openDemoVisits(t, in)

	at := func(sel string) chromedp.Action[chromedp.Void] { return chromedp.WaitVisible(chromedp.CSS(sel)) }
	screen := func(name string) {
		t.Helper()
		if box := b.box(t, "body"); box.ScrollWidth > box.ViewportWidth {
			t.Errorf("%s: the page is %.0f px wide in a %.0f px window: it scrolls sideways", name, box.ScrollWidth, box.ViewportWidth)
		}
		b.screenshot(t, name)
		b.checkAccessibility(t, name)
	}
	yourTime := func(name, sel, says string) {
		t.Helper()
		if box := b.box(t, sel); !box.Visible || !strings.Contains(box.Text, says) {
			t.Errorf("%s: no time of the reader's own beside the facility's (%s): %+v", name, sel, box)
		}
	}
	b.do(t, chromedp.EmulateViewport(360, 740))
	if _, err := chromedp.Call(b.ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "Asia/Tokyo"}); err != nil {
		t.Fatal(err)
	}
	b.do(t, chromedp.Navigate(in.URL+"/login"), at("#login-submit"),
		chromedp.SendKeys(chromedp.CSS("#email"), "maria@example.org"), chromedp.SendKeys(chromedp.CSS("#password"), "kinlink demo family 2026"),
		chromedp.Click(chromedp.CSS("#login-submit")), at("#my-people"))

	b.do(t, chromedp.Click(chromedp.CSS("#my-people a.book-visit")), at("#visit-times button.slot"))
	book := eval[string](t, b, `location.pathname`)
	var confirm string
	for _, lang := range []string{"en", "es"} {
		b.do(t, chromedp.Navigate(in.URL+"/lang?to="+lang+"&next="+book), at(`html[lang="`+lang+`"] #visit-times button.slot`))
		yourTime("booking "+lang, "#visit-times button.slot .your-time", map[string]string{"en": "your time:", "es": "su hora:"}[lang])
		screen("visit-booking-" + lang)
		b.do(t, chromedp.Click(chromedp.CSS("#visit-times button.slot")), at("#book"))
		confirm = eval[string](t, b, `location.pathname + location.search`)
		yourTime("confirmation "+lang, "#visit-facts .your-time", map[string]string{"en": "your time:", "es": "su hora:"}[lang])
		screen("visit-confirm-" + lang)
	}
	b.do(t, chromedp.Navigate(in.URL+"/lang?to=en&next="+confirm), at(`html[lang="en"] #book`),
		chromedp.Click(chromedp.CSS("#book")), at("#visit-booked"))
	visit := eval[string](t, b, `location.pathname`)
	for _, lang := range []string{"en", "es"} {
		b.do(t, chromedp.Navigate(in.URL+"/lang?to="+lang+"&next="+visit), at(`html[lang="`+lang+`"] #visit-facts`))
		screen("visit-" + lang)
		// The cancellation opens without a script and fits too.
		b.do(t, chromedp.Click(chromedp.CSS("#cancel-open")), at("#cancel-visit"))
		screen("visit-cancel-" + lang)
		b.do(t, chromedp.Navigate(in.URL+"/visits"), at("#coming-visits"))
		screen("visits-" + lang)
	}
}
