package web_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/visits"
)

// The live visit's pages open to the visit's own people only: the family that
// booked it, the resident at its station, and the facility's visitation officers.
// Before the waiting room opens they say when it does; the live visits page lists
// the visit whose time is now; ending it takes a reason; a privileged visit is
// never watched.
func TestLiveVisitPagesAnswerTheRightPeople(t *testing.T) {
	eachVisitsEngine(t, func(t *testing.T, w *world) {
		ctx := context.Background()
		contactID, admin := approvedContact(t, w, "ana@example.org")
		w.topUp(t, "20")

		// José at a kiosk that is made the visit station, every day open in
		// 30-minute visits bookable right away and scheduled without approval.
		station := kioskOf(t, w, admin, "A100")
		fsp, page := scheduleOf(t, admin)
		kiosk := stationForm.FindStringSubmatch(page)[1]
		allDayVisits(t, admin, fsp, kiosk, nil)

		// Ana books the first visit that starts more than 20 minutes from now.
		svc, db := bookings(t, w)
		var accountID string
		if err := db.Read().QueryRow("SELECT id FROM accounts WHERE email = $1", "ana@example.org").Scan(&accountID); err != nil {
			t.Fatal(err)
		}
		offer, err := svc.Offer(ctx, accountID, contactID, visits.Date{}, 2)
		if err != nil {
			t.Fatal(err)
		}
		var slot visits.Slot
		for _, sl := range offer.Slots {
			if sl.Start.After(time.Now().Add(20 * time.Minute)) {
				slot = sl
				break
			}
		}
		v, err := svc.Book(ctx, accountID, visits.Booking{ContactID: contactID, Start: slot.Start, Minutes: slot.Minutes, Key: "room"})
		if err != nil || v.State != visits.Scheduled {
			t.Fatalf("book: %v %+v", err, v)
		}
		room, kioskRoom, watch := "/visits/"+v.ID+"/room", "/kiosk/visits/"+v.ID, "/facility/visits/"+v.ID+"/watch"

		// Before the waiting room opens, each page says when it opens.
		opens := "The waiting room opens at"
		if _, page := w.get(t, "/visits/"+v.ID); !strings.Contains(page, `id="visit-opens"`) || strings.Contains(page, `id="join-visit"`) {
			t.Errorf("the visit page before the waiting room opens:\n%s", page)
		}
		for who, b := range map[string]*world{"family": w, "station": station} {
			path := map[string]string{"family": room, "station": kioskRoom}[who]
			res, page := b.get(t, path)
			if res.StatusCode != 200 || !strings.Contains(page, opens) || strings.Contains(page, `id="visit-room"`) {
				t.Errorf("the %s's room before it opens: %d\n%s", who, res.StatusCode, page)
			}
		}
		if _, home := station.get(t, "/kiosk"); strings.Contains(home, `id="join-`+v.ID+`"`) {
			t.Error("the kiosk offers to join a visit whose waiting room is closed")
		}

		// The clock reaches the visit: it started a minute ago. (Moving the booked
		// visit's time stands for waiting until then; the slots offered come from
		// now on, so none starts in the past.)
		now := time.Now().UTC().Truncate(time.Second)
		if _, err := db.Write().ExecContext(ctx, "UPDATE visits SET starts_at = $2, ends_at = $3 WHERE id = $1", v.ID, now.Add(-time.Minute), now.Add(29*time.Minute)); err != nil {
			t.Fatal(err)
		}

		// The family: the visit page links the room, which is ready to join.
		if _, page := w.get(t, "/visits/"+v.ID); !strings.Contains(page, `href="/visits/`+v.ID+`/room" id="join-visit"`) {
			t.Errorf("the visit page does not link the open room:\n%s", page)
		}
		res, page := w.get(t, room)
		for _, want := range []string{`id="visit-room"`, `data-role="family"`, `data-signal="/visits/` + v.ID + `/signal"`, "Waiting for José García…",
			`id="room-join"`, `id="room-hangup"`, `id="self-video"`, `/static/visit-room.js`, "Video of José García"} {
			if !strings.Contains(html.UnescapeString(page), want) {
				t.Errorf("the family's room lacks %q", want)
			}
		}
		if res.StatusCode != 200 {
			t.Errorf("the family's room: %d", res.StatusCode)
		}
		if m := regexp.MustCompile(`data-ends-at="([^"]+)"`).FindStringSubmatch(page); m == nil || m[1] != now.Add(29*time.Minute).Format(time.RFC3339) {
			t.Errorf("the room's end: %v", m)
		}
		// In Spanish, the script's words too.
		w.get(t, "/lang?to=es&next=/visits")
		if _, page := w.get(t, room); !strings.Contains(html.UnescapeString(page), "Esperando a José García…") ||
			!strings.Contains(page, "Entrar a la visita") || !strings.Contains(page, `data-by-staff="El personal del centro terminó la visita. Su motivo: «%s»"`) {
			t.Errorf("the family's room in Spanish:\n%s", page)
		}
		w.get(t, "/lang?to=en&next=/visits")
		// Another family finds nothing, neither the room nor its socket.
		other := w.browser(t)
		other.signUp(t, "bea@example.org")
		for _, path := range []string{room, "/visits/" + v.ID + "/signal"} {
			if res, _ := other.get(t, path); res.StatusCode != http.StatusNotFound {
				t.Errorf("another family opens %s: %d", path, res.StatusCode)
			}
		}

		// The resident at the station: Join on the home, and the room.
		if _, home := station.get(t, "/kiosk"); !strings.Contains(home, `href="/kiosk/visits/`+v.ID+`" id="join-`+v.ID+`"`) {
			t.Errorf("the station's home offers no Join:\n%s", home)
		}
		res, page = station.get(t, kioskRoom)
		for _, want := range []string{`id="visit-room"`, `data-role="resident"`, `data-signal="/kiosk/visits/` + v.ID + `/signal"`, "Waiting for Ana García…", "kiosk-room"} {
			if !strings.Contains(html.UnescapeString(page), want) {
				t.Errorf("the station's room lacks %q", want)
			}
		}
		if res.StatusCode != 200 {
			t.Errorf("the station's room: %d", res.StatusCode)
		}
		// José signed in at another kiosk is told it is at another station.
		elsewhere := kioskOf(t, w, admin, "A100")
		if _, home := elsewhere.get(t, "/kiosk"); strings.Contains(home, `id="join-`+v.ID+`"`) {
			t.Error("another kiosk offers to join the visit")
		}
		if res, page := elsewhere.get(t, kioskRoom); res.StatusCode != http.StatusConflict || !strings.Contains(page, "This visit is at another kiosk") {
			t.Errorf("the room at another kiosk: %d\n%s", res.StatusCode, page)
		}
		// Another resident finds nothing.
		w.importRoster(t, roster+"A103,Kim,Ana,FSP,B-3,active,\n")
		if res, _ := kioskOf(t, w, admin, "A103").get(t, kioskRoom); res.StatusCode != http.StatusNotFound {
			t.Errorf("another resident opens the room: %d", res.StatusCode)
		}

		// The officer: the live visits page lists it, with Watch.
		officer := staffBrowser(t, w, "fsp.officer@example.org", "--role", "visitation_officer", "--facility", "FSP")
		_, page = officer.get(t, "/facility/visits")
		if !strings.Contains(page, `id="visits-live-link"`) {
			t.Error("the visits pages do not link the live visits")
		}
		res, page = officer.get(t, "/facility/visits/live")
		for _, want := range []string{`id="live-` + v.ID + `"`, `href="` + watch + `"`, "José García", "Ana García", "Visiting room 2"} {
			if !strings.Contains(page, want) {
				t.Errorf("the live visits page lacks %q", want)
			}
		}
		if res.StatusCode != 200 {
			t.Errorf("live visits: %d", res.StatusCode)
		}
		res, page = officer.get(t, watch)
		for _, want := range []string{`data-role="watcher"`, `data-signal="/facility/visits/` + v.ID + `/watch/signal"`, `id="family-video"`, `id="resident-video"`,
			`action="/facility/visits/` + v.ID + `/end"`, "Visitor: Ana García", "Resident: José García"} {
			if !strings.Contains(page, want) {
				t.Errorf("the watch page lacks %q", want)
			}
		}
		if res.StatusCode != 200 || strings.Contains(page, `id="room-join"`) || strings.Contains(page, `id="room-mute"`) {
			t.Errorf("the watch page: %d, or it offers to send", res.StatusCode)
		}
		// Ending takes a reason, which both sides will read.
		res, page = officer.post(t, "/facility/visits/"+v.ID+"/end", url.Values{"reason": {"  "}})
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(page, `id="end-reason-error"`) || !strings.Contains(page, `aria-invalid="true"`) {
			t.Errorf("ending without a reason: %d\n%s", res.StatusCode, page)
		}

		// Another facility's officer is refused; another agency's staff find nothing.
		lci := staffBrowser(t, w, "lci.officer@example.org", "--role", "visitation_officer", "--facility", "LCI")
		for _, path := range []string{"/facility/visits/live?facility=" + fsp, watch, watch + "/signal"} {
			if res, _ := lci.get(t, path); res.StatusCode != http.StatusForbidden {
				t.Errorf("another facility's officer opens %s: %d", path, res.StatusCode)
			}
		}
		if res, _ := lci.post(t, "/facility/visits/"+v.ID+"/end", url.Values{"reason": {"Count"}}); res.StatusCode != http.StatusForbidden {
			t.Errorf("another facility's officer ends the visit: %d", res.StatusCode)
		}

		// A privileged visit is listed but never watched: refused in words.
		if _, err := db.Write().ExecContext(ctx, "UPDATE visits SET privileged = $2 WHERE id = $1", v.ID, true); err != nil {
			t.Fatal(err)
		}
		if _, page := officer.get(t, "/facility/visits/live"); !strings.Contains(page, "Privileged: never watched") || strings.Contains(page, `href="`+watch+`"`) {
			t.Errorf("the live visits page offers to watch a privileged visit:\n%s", page)
		}
		if res, page := officer.get(t, watch); res.StatusCode != http.StatusForbidden || !strings.Contains(page, "This is a privileged visit: no one may watch it.") {
			t.Errorf("watching a privileged visit: %d\n%s", res.StatusCode, page)
		}

		// Once its time has passed, the room says the visit is over.
		if _, err := db.Write().ExecContext(ctx, "UPDATE visits SET starts_at = $2, ends_at = $3 WHERE id = $1", v.ID, now.Add(-40*time.Minute), now.Add(-10*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if res, page := w.get(t, room); res.StatusCode != 200 || !strings.Contains(page, "This visit is over.") || strings.Contains(page, `id="visit-room"`) {
			t.Errorf("the room after the visit: %d\n%s", res.StatusCode, page)
		}
	})
}
