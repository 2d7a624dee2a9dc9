package web_test

import (
	"context"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/audit"
	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/media"
	"github.com/kinlink/kinlink/internal/visits"
)

// A visit's recording plays in the portal for the staff who may see it, in the
// parts a player asks for, each viewing audited once; others are refused.
func TestAVisitRecordingPlaysForStaffWhoMay(t *testing.T) {
	eachVisitsEngine(t, func(t *testing.T, w *world) {
		contactID, admin := approvedContact(t, w, "ana@example.org")
		w.topUp(t, "20")
		officer := staffBrowser(t, w, "fsp.officer@example.org", "--role", "visitation_officer", "--facility", "FSP")
		reviewer := staffBrowser(t, w, "fsp.mail@example.org", "--role", "mail_reviewer", "--facility", "FSP")
		fsp, _ := scheduleOf(t, admin)
		admin.post(t, "/facility/kiosks", url.Values{"facility": {fsp}, "name": {"Visit kiosk 1"}})
		_, page := admin.get(t, "/facility/visits/schedule")
		kiosk := stationForm.FindStringSubmatch(page)[1]
		allDayVisits(t, admin, fsp, kiosk, nil)
		svc, db := bookings(t, w)
		var accountID string
		if err := db.Read().QueryRow("SELECT id FROM accounts WHERE email = $1", "ana@example.org").Scan(&accountID); err != nil {
			t.Fatal(err)
		}
		ny, _ := time.LoadLocation("America/New_York")
		day := time.Now().In(ny).AddDate(0, 0, 2)
		v, err := svc.Book(context.Background(), accountID, visits.Booking{ContactID: contactID,
			Start: time.Date(day.Year(), day.Month(), day.Day(), 10, 0, 0, 0, ny), Minutes: 30, Key: "one"})
		if err != nil {
			t.Fatal(err)
		}
		// The visit took place and its room's recording was merged: a file in the
		// server's media store under an opaque id, and its row.
		key, segment := ids.New(), ids.New()
		store := media.Disk{Dir: filepath.Join(w.Env["KINLINK_DATA_DIR"], "media")}
		if err := store.Put(context.Background(), key, []byte("a recording of the visit")); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Write().Exec(`INSERT INTO visit_recordings (visit_id, segment, blob_key, seconds, created_at) VALUES ($1, $2, $3, 1198, $4)`,
			v.ID, segment, key, time.Now().UTC()); err != nil {
			t.Fatal(err)
		}

		// The day's list leads to it once the visit took place.
		if _, err := db.Write().Exec("UPDATE visits SET state = 'completed' WHERE id = $1", v.ID); err != nil {
			t.Fatal(err)
		}
		if _, page := officer.get(t, "/facility/visits?day="+day.Format("2006-01-02")); !strings.Contains(page, `href="/facility/visits/`+v.ID+`/recording"`) {
			t.Fatalf("the day's list does not lead to the recording:\n%s", page)
		}
		res, page := officer.get(t, "/facility/visits/"+v.ID+"/recording")
		src := "/facility/visits/" + v.ID + "/recording/" + segment
		if res.StatusCode != 200 || !strings.Contains(page, `src="`+src+`"`) || !strings.Contains(page, "19:58") {
			t.Fatalf("the recording page: %d\n%s", res.StatusCode, page)
		}
		for range 3 { // a player's range requests: one viewing
			req, _ := http.NewRequest("GET", officer.URL+src, nil)
			req.Header.Set("Range", "bytes=2-10")
			res, err := officer.Client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body := make([]byte, 64)
			n, _ := res.Body.Read(body)
			res.Body.Close()
			if res.StatusCode != http.StatusPartialContent || string(body[:n]) != "recording" || res.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("playing: %d %q", res.StatusCode, body[:n])
			}
		}
		var agencyID string
		if err := db.Read().QueryRow("SELECT id FROM agencies WHERE code = 'FLDOC'").Scan(&agencyID); err != nil {
			t.Fatal(err)
		}
		rows, err := audit.Search(context.Background(), db, audit.Filter{AgencyID: agencyID, Action: "visit.recording.play"})
		if err != nil || len(rows) != 1 || rows[0].Subject != "visit:"+v.ID {
			t.Fatalf("playbacks audited: %d %v", len(rows), err)
		}
		if res, _ := reviewer.get(t, src); res.StatusCode != http.StatusForbidden {
			t.Fatalf("a mail reviewer played it: %d", res.StatusCode)
		}
		if res, _ := officer.get(t, "/facility/visits/"+v.ID+"/recording/"+ids.New()); res.StatusCode != http.StatusNotFound {
			t.Fatalf("no such recording: %d", res.StatusCode)
		}
		if res, _ := w.get(t, src); res.StatusCode == http.StatusOK || res.StatusCode == http.StatusPartialContent {
			t.Fatalf("the family played it: %d", res.StatusCode)
		}
	})
}
