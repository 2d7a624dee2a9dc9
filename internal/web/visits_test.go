package web_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"github.com/kinlink/kinlink/internal/apptest"
	"html"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/visits"
)

// visitDesk is the facility's side of visits, set up the way its administrator
// will from the portal: the visits service on the running server's database.
type visitDesk struct {
	visits *visits.Service
	// approval sends each booking to an officer (from the next schedule set).
	approval bool
	admin    facility.Access
	fsp      facility.Facility
}

// openVisitDesk makes a kiosk of FSP a visit station and gives FSP a schedule:
// every day 09:00–11:00 in 20-minute slots at $0.16 a minute, booked 24 hours to
// 14 days ahead, scheduled without approval, cancelled up to an hour before.
// fsp.admin@example.org must be enrolled.
func openVisitDesk(t *testing.T, w *world) *visitDesk {
	t.Helper()
	ctx := context.Background()
	dom := serverDomain(t, w)
	fac, id := dom.fac, dom.id
	d := &visitDesk{visits: dom.visits}
	agency, err := fac.AgencyByCode(ctx, "FLDOC")
	if err != nil {
		t.Fatal(err)
	}
	if d.fsp, err = fac.FacilityByCode(ctx, agency.ID, "FSP"); err != nil {
		t.Fatal(err)
	}
	acct, err := id.AccountByEmail(ctx, "fsp.admin@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if d.admin, err = fac.AccessOf(ctx, acct.ID); err != nil {
		t.Fatal(err)
	}
	kiosk, _, err := fac.CreateKiosk(ctx, facility.Operator, agency.ID, d.fsp.ID, "Visiting room 1")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.visits.SetStation(ctx, d.admin, kiosk.ID, true, "Visiting room"); err != nil {
		t.Fatal(err)
	}
	d.schedule(t, 1)
	return d
}

// schedule sets FSP's schedule with a cancellation cutoff of cancelHours.
func (d *visitDesk) schedule(t *testing.T, cancelHours int) {
	t.Helper()
	sch := visits.Schedule{SlotMinutes: 20, MinLeadHours: 24, MaxAheadDays: 14, WeeklyLimit: 3, RateMills: 160, CancelHours: cancelHours,
		NeedsApproval: d.approval}
	for day := time.Sunday; day <= time.Saturday; day++ {
		sch.Hours = append(sch.Hours, visits.Hours{Weekday: day, Start: 9 * 60, End: 11 * 60})
	}
	if err := d.visits.SetSchedule(context.Background(), d.admin, d.fsp.ID, sch); err != nil {
		t.Fatal(err)
	}
}

// addContact makes the resident number of FLDOC an approved contact of the family
// signed in on fam as email, approved by the FSP administrator on staff.
func addContact(t *testing.T, fam *world, email, number string, staff *world) string {
	t.Helper()
	_, login := fam.JSON(t, "POST", "/api/v1/login", map[string]any{"email": email, "password": password})
	auth := []string{"Authorization", "Bearer " + login["token"].(string)}
	_, found := fam.JSON(t, "GET", "/api/v1/residents?agency=FLDOC&resident_id="+number, nil, auth...)
	resident := found["residents"].([]any)[0].(map[string]any)
	_, c := fam.JSON(t, "POST", "/api/v1/contacts", map[string]any{"resident": resident["id"]}, auth...)
	if res, _ := staff.post(t, "/facility/contacts/"+c["id"].(string), url.Values{"decision": {"approve"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("approve contact: %d", res.StatusCode)
	}
	return c["id"].(string)
}

var (
	slotButton = regexp.MustCompile(`name="slot" value="([^"]+)"`)
	visitPath  = regexp.MustCompile(`^/visits/([0-9a-f]+)\?booked=1$`)
)

// slots are the values of the free times a booking page offers.
func slots(page string) []string {
	var out []string
	for _, m := range slotButton.FindAllStringSubmatch(page, -1) {
		out = append(out, html.UnescapeString(m[1]))
	}
	return out
}

func (w *world) balance(t *testing.T) string {
	t.Helper()
	_, page := w.get(t, "/wallet")
	m := regexp.MustCompile(`id="balance">([^<]+)<`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no balance on the wallet page:\n%s", page)
	}
	return m[1]
}

// book confirms a slot and books it, returning the answer to the booking.
func (w *world) book(t *testing.T, contact, slot string) (*http.Response, string) {
	t.Helper()
	res, page := w.get(t, "/people/"+contact+"/visits/confirm?"+url.Values{"slot": {slot}}.Encode())
	key := sendKey.FindStringSubmatch(page)
	if res.StatusCode != 200 || key == nil {
		t.Fatalf("confirmation of %s: %d\n%s", slot, res.StatusCode, page)
	}
	return w.post(t, "/people/"+contact+"/visits", url.Values{"slot": {slot}, "key": {key[1]}})
}

// calendarOf waits for the mail to someone whose subject has subject in it, and
// returns its text/calendar attachment.
func calendarOf(t *testing.T, w *world, to, about string) (subject, calendar string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range w.smtp.Messages() {
			if m.To[0] != to || !strings.Contains(m.Subject, about) {
				continue
			}
			msg, err := mail.ReadMessage(bytes.NewReader(m.Raw))
			if err != nil {
				t.Fatal(err)
			}
			return m.Subject, findPart(t, msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body, "text/calendar")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no mail %q to %s arrived", about, to)
	return "", ""
}

// findPart is the decoded body of a mail's first part of a media type.
func findPart(t *testing.T, contentType, encoding string, body io.Reader, want string) string {
	t.Helper()
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return ""
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				return ""
			}
			if got := findPart(t, p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p, want); got != "" {
				return got
			}
		}
	}
	if mt != want {
		return ""
	}
	switch strings.ToLower(encoding) {
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, body)
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// eachEngineWithVisits runs fn on every engine with video visits on.
func eachEngineWithVisits(t *testing.T, fn func(t *testing.T, w *world)) {
	apptest.NeedMediaTools(t) // visits are recorded
	for _, e := range dbtest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) { fn(t, startWith(t, e.Setting, map[string]string{"KINLINK_VIDEO_VISITS": "on"})) })
	}
}

const visitRoster = roster + "A103,Ortiz,Marta,FSP,B-14,active,\n" + "A104,Vega,Luis,FSP,B-3,active,no_video\n"

// A family books a video visit from one of their people: the free times with their
// price, a confirmation naming what is held, then the visit, the money held, the
// mail with its calendar file; a time taken meanwhile, an empty wallet and a
// person without video are refused in words, with nothing taken; a cancellation
// gives everything back, until the facility's cutoff; another family sees nothing.
func TestFamilyBooksAVideoVisit(t *testing.T) {
	eachEngineWithVisits(t, func(t *testing.T, w *world) {
		contact, staff := approvedContact(t, w, "ana@example.org")
		w.importRoster(t, visitRoster)
		desk := openVisitDesk(t, w)

		_, page := w.get(t, "/people")
		if !strings.Contains(page, `href="/people/`+contact+`/visits/new"`) || !strings.Contains(page, `id="visits-link"`) {
			t.Fatalf("my people offers no visit:\n%s", page)
		}
		res, page := w.get(t, "/people/"+contact+"/visits/new")
		free := slots(page)
		if res.StatusCode != 200 || len(free) < 6 || !strings.Contains(page, "$0.16 a minute") || !strings.Contains(page, "holds $3.20") ||
			strings.Count(page, `class="slot-price">$3.20<`) != len(free) || !strings.Contains(page, `data-facility-zone="America/New_York"`) ||
			!strings.Contains(page, `src="/static/visits.js"`) {
			t.Fatalf("booking page: %d, %d times\n%s", res.StatusCode, len(free), page)
		}
		// Times read on the facility's clock, 09:00 to 11:00 there, at least a day ahead.
		ny, _ := time.LoadLocation("America/New_York")
		first, err := time.Parse(time.RFC3339, strings.Fields(free[0])[0])
		if err != nil {
			t.Fatal(err)
		}
		if local := first.In(ny); local.Hour() < 9 || local.Hour() >= 11 || time.Until(first) < 24*time.Hour {
			t.Errorf("first time offered: %v", local)
		}
		zone, _ := first.In(ny).Zone()
		if want := first.In(ny).Format("15:04") + "–" + first.In(ny).Add(20*time.Minute).Format("15:04") + " " + zone; !strings.Contains(page, want) {
			t.Errorf("the booking page does not say %q", want)
		}
		if !strings.Contains(page, `id="later"`) || strings.Contains(page, `id="earlier"`) {
			t.Errorf("the first page pages forward only")
		}
		// The next page lists the next week's days; the last day of the window has
		// nothing after it.
		next := regexp.MustCompile(`id="later" href="([^"]+)"`).FindStringSubmatch(page)[1]
		if res, page := w.get(t, html.UnescapeString(next)); res.StatusCode != 200 || len(slots(page)) < 7*6 || !strings.Contains(page, `id="earlier"`) {
			t.Errorf("the next days: %d, %d times", res.StatusCode, len(slots(page)))
		}
		far := visits.DateOf(time.Now().In(ny)).AddDays(15)
		if res, page := w.get(t, "/people/"+contact+"/visits/new?from="+far.String()); res.StatusCode != 200 || len(slots(page)) != 0 ||
			!strings.Contains(page, `id="no-times"`) || !strings.Contains(page, "cannot be booked yet") || strings.Contains(page, `id="later"`) {
			t.Errorf("days past the window: %d\n%s", res.StatusCode, page)
		}

		// Confirming names the price and what is held; with no money, nothing is booked.
		res, page = w.get(t, "/people/"+contact+"/visits/confirm?"+url.Values{"slot": {free[0]}}.Encode())
		if res.StatusCode != 200 || !strings.Contains(page, "José García") || !strings.Contains(page, "Florida State Prison") ||
			!strings.Contains(page, "20 minutes") || !strings.Contains(page, `id="held">$3.20<`) || !strings.Contains(page, `id="balance">$0.00<`) ||
			!strings.Contains(page, "you pay only for the minutes you are connected") || !strings.Contains(page, `id="needs-money"`) {
			t.Fatalf("confirmation: %d\n%s", res.StatusCode, page)
		}
		res, page = w.book(t, contact, free[0])
		if res.StatusCode != http.StatusPaymentRequired || !strings.Contains(page, "not enough money in your wallet") || !strings.Contains(page, `id="add-money"`) {
			t.Fatalf("booking with an empty wallet: %d\n%s", res.StatusCode, page)
		}
		if b := w.balance(t); b != "$0.00" {
			t.Errorf("balance after a refused booking: %s", b)
		}
		w.topUp(t, "10")

		// Another family takes the first time while Ana confirms it: Ana is told,
		// and keeps her money.
		bea := stranger(t, w)
		marta := addContact(t, bea, "bea@example.org", "A103", staff)
		bea.topUp(t, "10")
		_, page = w.get(t, "/people/"+contact+"/visits/confirm?"+url.Values{"slot": {free[0]}}.Encode())
		anaKey := sendKey.FindStringSubmatch(page)[1]
		if res, page := bea.book(t, marta, free[0]); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("Bea's booking: %d\n%s", res.StatusCode, page)
		}
		res, page = w.post(t, "/people/"+contact+"/visits", url.Values{"slot": {free[0]}, "key": {anaKey}})
		if res.StatusCode != http.StatusConflict || !strings.Contains(page, "Someone else just booked that time") || len(slots(page)) == 0 {
			t.Fatalf("a time taken meanwhile: %d\n%s", res.StatusCode, page)
		}
		for _, s := range slots(page) {
			if s == free[0] {
				t.Errorf("the time taken is still offered")
			}
		}
		if b := w.balance(t); b != "$10.00" {
			t.Errorf("balance after a time taken: %s", b)
		}
		if res, page := w.get(t, "/people/"+contact+"/visits/confirm?"+url.Values{"slot": {free[0]}}.Encode()); res.StatusCode != 400 ||
			!strings.Contains(page, "not open for booking any more") {
			t.Errorf("confirming a time taken: %d", res.StatusCode)
		}

		// Ana books the next time: the visit, the hold, the mail with its calendar
		// file. The same form sent twice books once.
		key := sendKey.FindStringSubmatch(bookPage(t, w, contact, free[1]))[1]
		var m []string
		for range 2 {
			res, page = w.post(t, "/people/"+contact+"/visits", url.Values{"slot": {free[1]}, "key": {key}})
			again := visitPath.FindStringSubmatch(res.Header.Get("Location"))
			if res.StatusCode != http.StatusSeeOther || again == nil || m != nil && again[1] != m[1] {
				t.Fatalf("booking: %d %s\n%s", res.StatusCode, res.Header.Get("Location"), page)
			}
			m = again
		}
		visit := m[1]
		res, page = w.get(t, "/visits/"+visit+"?booked=1")
		if res.StatusCode != 200 || !strings.Contains(page, `id="visit-booked"`) || !strings.Contains(page, `id="visit-state">Scheduled<`) ||
			!strings.Contains(page, "$3.20 held from your wallet") || !strings.Contains(page, `id="cancel-visit"`) || !strings.Contains(page, "You can cancel until") {
			t.Fatalf("visit page: %d\n%s", res.StatusCode, page)
		}
		if b := w.balance(t); b != "$6.80" {
			t.Errorf("balance with a visit held: %s", b)
		}
		if _, page := w.get(t, "/wallet"); !strings.Contains(page, "Video visit held") || !strings.Contains(page, "-$3.20") {
			t.Errorf("the wallet's history does not show the hold")
		}
		start, _ := time.Parse(time.RFC3339, strings.Fields(free[1])[0])
		subject, ics := calendarOf(t, w, "ana@example.org", "Video visit booked")
		if !strings.Contains(subject, "José García") || !strings.Contains(ics, "DTSTART:"+start.UTC().Format("20060102T150405Z")+"\r\n") ||
			!strings.Contains(ics, "DTEND:"+start.Add(20*time.Minute).UTC().Format("20060102T150405Z")+"\r\n") || strings.Contains(ics, "TZID") {
			t.Errorf("the booking's mail: %q\n%s", subject, ics)
		}
		_, page = w.get(t, "/visits")
		if !strings.Contains(page, `id="coming-visits"`) || !strings.Contains(page, "/visits/"+visit) {
			t.Errorf("my visits:\n%s", page)
		}

		// Another family: no such visit.
		if res, _ := bea.get(t, "/visits/"+visit); res.StatusCode != 404 {
			t.Errorf("another family's visit: %d", res.StatusCode)
		}
		if res, _ := bea.post(t, "/visits/"+visit+"/cancel", nil); res.StatusCode != 404 {
			t.Errorf("another family cancels: %d", res.StatusCode)
		}
		if res, _ := bea.get(t, "/people/"+contact+"/visits/new"); res.StatusCode != 404 {
			t.Errorf("another family's contact's booking page: %d", res.StatusCode)
		}

		// Ana cancels: everything comes back.
		if res, _ := w.post(t, "/visits/"+visit+"/cancel", nil); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("cancel: %d", res.StatusCode)
		}
		_, page = w.get(t, "/visits/"+visit+"?cancelled=1")
		if !strings.Contains(page, `id="visit-state">Cancelled<`) || !strings.Contains(page, "You cancelled it.") ||
			!strings.Contains(page, "Nothing charged: $3.20 came back") || strings.Contains(page, `id="cancel-visit"`) {
			t.Errorf("cancelled visit:\n%s", page)
		}
		if b := w.balance(t); b != "$10.00" {
			t.Errorf("balance after the cancellation: %s", b)
		}
		if _, page := w.get(t, "/visits"); !strings.Contains(page, `id="past-visits"`) || !strings.Contains(page, "You cancelled it.") {
			t.Errorf("my visits after the cancellation:\n%s", page)
		}

		// Past the facility's cutoff the page says until when it could be cancelled,
		// and a cancellation is refused in words.
		res, _ = w.book(t, contact, free[2])
		later := visitPath.FindStringSubmatch(res.Header.Get("Location"))
		if later == nil {
			t.Fatalf("booking the third time: %d", res.StatusCode)
		}
		desk.schedule(t, 72)
		_, page = w.get(t, "/visits/"+later[1])
		if !strings.Contains(page, `id="cancel-closed"`) || !strings.Contains(page, "could be cancelled until") || strings.Contains(page, `id="cancel-visit"`) {
			t.Errorf("a visit past the cutoff:\n%s", page)
		}
		if res, page := w.post(t, "/visits/"+later[1]+"/cancel", nil); res.StatusCode != http.StatusConflict || !strings.Contains(page, "too close to the visit") {
			t.Errorf("a cancellation past the cutoff: %d", res.StatusCode)
		}
		if b := w.balance(t); b != "$6.80" {
			t.Errorf("balance with the third visit held: %s", b)
		}

		// A person the facility does not allow video: refused in words, on the
		// page and when booking anyway.
		luis := addContact(t, w, "ana@example.org", "A104", staff)
		if res, page := w.get(t, "/people/"+luis+"/visits/new"); res.StatusCode != http.StatusForbidden ||
			!strings.Contains(page, "does not allow this person video visits") || len(slots(page)) != 0 {
			t.Errorf("a person without video: %d\n%s", res.StatusCode, page)
		}
		if res, page := w.post(t, "/people/"+luis+"/visits", url.Values{"slot": {free[3]}, "key": {anaKey}}); res.StatusCode != http.StatusForbidden ||
			!strings.Contains(page, "does not allow this person video visits") {
			t.Errorf("booking a person without video: %d", res.StatusCode)
		}
		if b := w.balance(t); b != "$6.80" {
			t.Errorf("balance after refusals: %s", b)
		}
		if out := w.operator(t, "ledger", "verify"); !strings.Contains(out, "ledger verified") {
			t.Errorf("ledger verify: %s", out)
		}
	})
}

// bookPage is a confirmation page's HTML.
func bookPage(t *testing.T, w *world, contact, slot string) string {
	t.Helper()
	_, page := w.get(t, "/people/"+contact+"/visits/confirm?"+url.Values{"slot": {slot}}.Encode())
	return page
}

// Without the setting, no visit page, link or route exists.
func TestVisitPagesAreOffWithoutTheSetting(t *testing.T) {
	w := start(t, dbtest.Engines(t)[0].Setting)
	contact, _ := approvedContact(t, w, "ana@example.org")
	if _, page := w.get(t, "/people"); strings.Contains(page, "/visits") || strings.Contains(page, "Book a video visit") {
		t.Errorf("my people offers visits:\n%s", page)
	}
	if _, page := w.get(t, "/people/"+contact+"/messages"); strings.Contains(page, "/visits") {
		t.Errorf("the conversation offers visits")
	}
	for _, path := range []string{"/visits", "/visits/0123456789abcdef0123456789abcdef", "/people/" + contact + "/visits/new", "/people/" + contact + "/visits/confirm"} {
		if res, _ := w.get(t, path); res.StatusCode != 404 {
			t.Errorf("GET %s: %d", path, res.StatusCode)
		}
	}
	if res, _ := w.post(t, "/people/"+contact+"/visits", url.Values{"slot": {"x"}}); res.StatusCode != 404 {
		t.Errorf("booking: %d", res.StatusCode)
	}
}

// What became of a visit reads in words: a request waits for the facility; the
// officer's rejection gives their reason and everything back; a visit the system
// cancelled because the person was released says so. The pages speak Spanish too.
func TestFamilyReadsWhatBecameOfAVisit(t *testing.T) {
	eachEngineWithVisits(t, func(t *testing.T, w *world) {
		contact, _ := approvedContact(t, w, "ana@example.org")
		desk := openVisitDesk(t, w)
		desk.approval = true
		desk.schedule(t, 1)
		w.topUp(t, "10")
		_, page := w.get(t, "/people/"+contact+"/visits/new")
		free := slots(page)
		if len(free) < 2 {
			t.Fatalf("free times: %d", len(free))
		}
		if _, page := w.get(t, "/people/"+contact+"/visits/confirm?"+url.Values{"slot": {free[0]}}.Encode()); !strings.Contains(page, "The facility approves each visit") {
			t.Errorf("the confirmation does not say the facility approves it")
		}
		res, _ := w.book(t, contact, free[0])
		first := visitPath.FindStringSubmatch(res.Header.Get("Location"))
		if first == nil {
			t.Fatalf("booking: %d", res.StatusCode)
		}
		_, page = w.get(t, "/visits/"+first[1]+"?booked=1")
		if !strings.Contains(page, "Your request was sent") || !strings.Contains(page, `id="visit-state">Requested: waiting for the facility<`) {
			t.Errorf("a requested visit:\n%s", page)
		}
		if err := desk.visits.Decide(context.Background(), desk.admin, first[1], false, "Count day: no visits"); err != nil {
			t.Fatal(err)
		}
		_, page = w.get(t, "/visits/"+first[1])
		if !strings.Contains(page, `id="visit-state">Not approved<`) || !strings.Contains(page, "The facility&#39;s reason: Count day: no visits") ||
			!strings.Contains(page, "Nothing charged: $3.20 came back") || strings.Contains(page, `id="cancel"`) {
			t.Errorf("a rejected visit:\n%s", page)
		}

		res, _ = w.book(t, contact, free[1])
		second := visitPath.FindStringSubmatch(res.Header.Get("Location"))
		if second == nil {
			t.Fatalf("booking: %d", res.StatusCode)
		}
		w.importRoster(t, strings.Replace(roster, "A100,García,José,FSP,B-12,active,", "A100,García,José,FSP,B-12,released,", 1))
		if _, err := desk.visits.Sweep(context.Background()); err != nil {
			t.Fatal(err)
		}
		_, page = w.get(t, "/visits")
		if strings.Contains(page, `id="coming-visits"`) || !strings.Contains(page, "The person was released, so the visit was cancelled.") ||
			!strings.Contains(page, "The facility&#39;s reason: Count day") {
			t.Errorf("my visits:\n%s", page)
		}
		if b := w.balance(t); b != "$10.00" {
			t.Errorf("balance: %s", b)
		}

		// In Spanish.
		w.get(t, "/lang?to=es&next=/visits")
		if _, page := w.get(t, "/visits/"+second[1]); !strings.Contains(page, "Videovisita con") || !strings.Contains(page, "La persona fue liberada") ||
			!strings.Contains(page, "volvieron a su billetera") {
			t.Errorf("a visit in Spanish:\n%s", page)
		}
		if out := w.operator(t, "ledger", "verify"); !strings.Contains(out, "ledger verified") {
			t.Errorf("ledger verify: %s", out)
		}
	})
}
