package api_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/apptest"
	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/media"
	"github.com/kinlink/kinlink/internal/videogram"
)

// testClip makes a clip with ffmpeg's test sources (size, seconds), or skips when
// ffmpeg is missing (fails with KINLINK_MEDIA_TOOLS=require, as in CI).
func testClip(t *testing.T, size, seconds string) []byte {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		if os.Getenv("KINLINK_MEDIA_TOOLS") == "require" {
			t.Fatal("KINLINK_MEDIA_TOOLS=require, but there is no ffmpeg")
		}
		t.Skip("skipping: no ffmpeg (apt-get install ffmpeg)")
	}
	out := filepath.Join(t.TempDir(), "clip.mp4")
	cmd := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=size="+size+":rate=15:duration="+seconds,
		"-f", "lavfi", "-i", "sine=duration="+seconds, "-shortest", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
		"-metadata", "location=+40.7128-074.0060/", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v %s", err, b)
	}
	data, _ := os.ReadFile(out)
	return data
}

// tusRequest is one request of the resumable upload protocol.
func (w *world) tus(t *testing.T, token, method, path string, body io.Reader, headers ...string) *http.Response {
	t.Helper()
	res := w.Do(t, method, path, body, append(append(bearer(token), "Tus-Resumable", "1.0.0"), headers...)...)
	apptest.Body(t, res)
	return res
}

// dropMidPiece sends a piece at offset from, promising size bytes, whose
// connection drops after sent: the server gets the headers and sent, then the end
// of the stream. The client closes only its sending side and waits for the server
// to hang up, so that it asks how far the server got once the server is done with
// the piece. Asking sooner (a phone cannot tell) may come before the server has
// even begun on the piece, which then lands after the answer and makes the rest
// sent from it a conflict (409) that a real app answers by asking again; requests
// for one upload that overlap are internal/httpx's
// TestResumableLockTakeoverSparesTheConnection.
func (w *world) dropMidPiece(t *testing.T, token, path string, from int, sent []byte, size int) {
	t.Helper()
	u, err := url.Parse(w.URL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nTus-Resumable: 1.0.0\r\n"+
		"Upload-Offset: %d\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: %d\r\n\r\n", path, u.Host, token, from, size)
	if _, err := conn.Write(sent); err != nil {
		t.Fatal(err)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	// The piece was cut short: whatever the server answers, it is not that it
	// took the piece.
	if res, err := http.ReadResponse(bufio.NewReader(conn), nil); err == nil && res.StatusCode/100 == 2 {
		t.Fatalf("a piece cut short was answered %d", res.StatusCode)
	}
	if _, err := io.Copy(io.Discard, conn); err != nil {
		t.Fatalf("waiting for the server to hang up: %v", err)
	}
}

// upload sends data with tus: the first third, then a piece whose connection drops
// half-way, then from wherever the server says it got to. It returns the id.
func (w *world) upload(t *testing.T, token string, data []byte) string {
	t.Helper()
	res := w.tus(t, token, "POST", "/api/v1/uploads", nil, "Upload-Length", strconv.Itoa(len(data)))
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d", res.StatusCode)
	}
	loc := res.Header.Get("Location")
	path := loc[strings.Index(loc, "/api/v1/uploads/"):]
	piece := func(from int, body io.Reader) *http.Response {
		return w.tus(t, token, "PATCH", path, body, "Upload-Offset", strconv.Itoa(from), "Content-Type", "application/offset+octet-stream")
	}
	third := len(data) / 3
	if res := piece(0, bytes.NewReader(data[:third])); res.StatusCode != http.StatusNoContent {
		t.Fatalf("first piece: %d", res.StatusCode)
	}
	// The connection drops in the middle of the second piece, which promised the
	// rest; the client asks how far the server got.
	w.dropMidPiece(t, token, path, third, data[third:2*third], len(data)-third)
	res = w.tus(t, token, "HEAD", path, nil)
	offset, err := strconv.Atoi(res.Header.Get("Upload-Offset"))
	if res.StatusCode != http.StatusOK || err != nil || offset < third || offset > 2*third {
		t.Fatalf("after the drop: %d, offset %q (sent %d to %d)", res.StatusCode, res.Header.Get("Upload-Offset"), third, 2*third)
	}
	if res := piece(offset, bytes.NewReader(data[offset:])); res.StatusCode != http.StatusNoContent || res.Header.Get("Upload-Offset") != strconv.Itoa(len(data)) {
		t.Fatalf("the rest: %d, offset %q", res.StatusCode, res.Header.Get("Upload-Offset"))
	}
	return path[len("/api/v1/uploads/"):]
}

func (w *world) sendVideoGram(t *testing.T, token, contact, upload, key string) (*apptest.Response, map[string]any) {
	t.Helper()
	return w.JSON(t, "POST", "/api/v1/contacts/"+contact+"/videograms", map[string]any{"upload_id": upload}, append(bearer(token), "Idempotency-Key", key)...)
}

// message finds a message of the conversation by id.
func (w *world) message(t *testing.T, token, contact, id string) map[string]any {
	t.Helper()
	_, conv := w.JSON(t, "GET", "/api/v1/contacts/"+contact+"/messages", nil, bearer(token)...)
	for _, m := range conv["messages"].([]any) {
		if m := m.(map[string]any); m["id"] == id {
			return m
		}
	}
	t.Fatalf("message %s not in the conversation: %v", id, conv)
	return nil
}

func (w *world) balance(t *testing.T, token string) float64 {
	t.Helper()
	_, wallet := w.JSON(t, "GET", "/api/v1/wallet", nil, bearer(token)...)
	return wallet["balance_cents"].(float64)
}

// Issue 14: a clip uploaded in pieces across a dropped connection is sent, charged
// once, converted without its location, and waits in review; only its family can
// play it, with ranges.
func TestVideoGramOverTheAPI(t *testing.T) {
	clip := testClip(t, "320x240", "2")
	eachEngine(t, map[string]string{"KINLINK_VIDEO_WORKERS": "1"}, func(t *testing.T, w *world) {
		token, contact := contactOfJose(t, w)
		w.JSON(t, "POST", "/api/v1/wallet/top-ups", map[string]any{"amount_cents": 500, "payment_token": "tok_visa"}, append(bearer(token), "Idempotency-Key", "t1")...)

		_, quote := w.JSON(t, "GET", "/api/v1/contacts/"+contact+"/messages/quote?kind=videogram", nil, bearer(token)...)
		if quote["cost_stamps"] != float64(3) || quote["max_seconds"] != float64(30) {
			t.Fatalf("quote: %v", quote)
		}
		price := quote["cost_cents"].(float64)

		upload := w.upload(t, token, clip)
		// Sending a clip before it is whole is refused.
		unfinished := w.tus(t, token, "POST", "/api/v1/uploads", nil, "Upload-Length", "1000")
		half := unfinished.Header.Get("Location")
		if res, body := w.sendVideoGram(t, token, contact, half[strings.LastIndex(half, "/")+1:], "v0"); res.StatusCode != http.StatusConflict || errCode(body) != "upload_incomplete" {
			t.Errorf("an unfinished upload: %d %s", res.StatusCode, res.Raw)
		}

		res, sent := w.sendVideoGram(t, token, contact, upload, "v1")
		if res.StatusCode != http.StatusAccepted || sent["kind"] != "videogram" || sent["state"] != "processing" || sent["cost_stamps"] != float64(3) {
			t.Fatalf("send: %d %s", res.StatusCode, res.Raw)
		}
		// The app retries (no answer reached it): the same message, charged once.
		if res, again := w.sendVideoGram(t, token, contact, upload, "v1"); res.StatusCode != http.StatusAccepted || again["id"] != sent["id"] {
			t.Errorf("retry: %d %s", res.StatusCode, res.Raw)
		}
		// A new send of the same upload is refused: an upload is sent once.
		if res, body := w.sendVideoGram(t, token, contact, upload, "v2"); res.StatusCode != http.StatusConflict || errCode(body) != "upload_used" {
			t.Errorf("the same upload again: %d %s", res.StatusCode, res.Raw)
		}
		if got := w.balance(t, token); got != 500-price {
			t.Errorf("balance %v after one VideoGram of %v", got, price)
		}

		jobs := w.JobsSettled(t)
		if apptest.Succeeded(jobs, videogram.ProcessJob) != 1 {
			t.Fatalf("conversions: %+v", jobs)
		}
		id := sent["id"].(string)
		m := w.message(t, token, contact, id)
		clipJSON, _ := m["videogram"].(map[string]any)
		if m["state"] != "in_review" || clipJSON["state"] != "ready" || clipJSON["duration_ms"].(float64) < 1800 || clipJSON["duration_ms"].(float64) > 2200 {
			t.Fatalf("after conversion: %v", m)
		}

		// The family plays it, from anywhere in it.
		video := w.Do(t, "GET", clipJSON["video_url"].(string), nil, bearer(token)...)
		whole := []byte(apptest.Body(t, video))
		if video.StatusCode != http.StatusOK || video.Header.Get("Content-Type") != "video/mp4" || !bytes.Contains(whole[:64], []byte("ftyp")) {
			t.Fatalf("video: %d %s", video.StatusCode, video.Header.Get("Content-Type"))
		}
		if bytes.Contains(whole, []byte("+40.7128")) {
			t.Error("the clip's location came through")
		}
		part := w.Do(t, "GET", clipJSON["video_url"].(string), nil, append(bearer(token), "Range", "bytes=100-199")...)
		if body := apptest.Body(t, part); part.StatusCode != http.StatusPartialContent || body != string(whole[100:200]) {
			t.Errorf("a range: %d, %d bytes", part.StatusCode, len(body))
		}
		if poster := w.Do(t, "GET", clipJSON["poster_url"].(string), nil, bearer(token)...); poster.StatusCode != http.StatusOK ||
			!strings.HasPrefix(apptest.Body(t, poster), "\xff\xd8\xff") {
			t.Errorf("poster: %d", poster.StatusCode)
		}
		// Nobody else learns it exists.
		other := w.register(t, "bea@example.org")
		for _, u := range []string{clipJSON["video_url"].(string), clipJSON["poster_url"].(string)} {
			if res := w.Do(t, "GET", u, nil, bearer(other)...); res.StatusCode != http.StatusNotFound {
				t.Errorf("%s for another family: %d", u, res.StatusCode)
			}
		}
		if res := w.tus(t, other, "HEAD", half[strings.Index(half, "/api/v1/uploads/"):], nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("another family's upload: %d", res.StatusCode)
		}

		// 91 days later (the default retention is 90), the clip is deleted by the
		// hourly housekeeping (which a server does as it starts), and audited; the
		// message stays, saying so.
		db, err := database.Open(context.Background(), w.Env["KINLINK_DATABASE"])
		if err != nil {
			t.Fatal(err)
		}
		old := time.Now().UTC().AddDate(0, 0, -91)
		db.Write().Exec("UPDATE messages SET created_at = $1 WHERE id = $2", old, id)
		db.Write().Exec("UPDATE videograms SET created_at = $1 WHERE message_id = $2", old, id)
		db.Close()
		later := start(t, w.Env["KINLINK_DATABASE"], map[string]string{"KINLINK_DATA_DIR": w.Env["KINLINK_DATA_DIR"]})
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			m := later.message(t, token, contact, id)
			if c, _ := m["videogram"].(map[string]any); c["state"] == "deleted" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the clip was not deleted after its retention: %v", m)
			}
		}
		if res := later.Do(t, "GET", clipJSON["video_url"].(string), nil, bearer(token)...); res.StatusCode != http.StatusNotFound {
			t.Errorf("a deleted clip plays: %d", res.StatusCode)
		}
		db, err = database.Open(context.Background(), w.Env["KINLINK_DATABASE"])
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var audited int
		db.Read().QueryRow("SELECT COUNT(*) FROM audit_log WHERE action = 'videogram.deleted' AND subject = $1", "message:"+id).Scan(&audited)
		if audited != 1 {
			t.Errorf("the deletion was audited %d times", audited)
		}
		later.Command(t, "audit", "verify") // the chain still holds
	})
}

// Issue 14: a clip that cannot be used fails with the reason and gives every stamp
// back; the books still balance.
func TestVideoGramThatCannotBeUsedIsRefunded(t *testing.T) {
	long := testClip(t, "64x48", "33")
	eachEngine(t, nil, func(t *testing.T, w *world) {
		token, contact := contactOfJose(t, w)
		w.JSON(t, "POST", "/api/v1/wallet/top-ups", map[string]any{"amount_cents": 500, "payment_token": "tok_visa"}, append(bearer(token), "Idempotency-Key", "t1")...)
		sent := map[string]string{}
		for name, data := range map[string][]byte{
			"video_too_long": long,
			"not_a_video":    []byte("#EXTM3U\n#EXTINF:10.0,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"),
		} {
			res, m := w.sendVideoGram(t, token, contact, w.upload(t, token, data), name)
			if res.StatusCode != http.StatusAccepted {
				t.Fatalf("%s: %d %s", name, res.StatusCode, res.Raw)
			}
			sent[name] = m["id"].(string)
		}
		w.JobsSettled(t)
		for fault, id := range sent {
			m := w.message(t, token, contact, id)
			if m["state"] != "failed" || m["reason"] != fault {
				t.Errorf("%s: %v", fault, m)
			}
		}
		if got := w.balance(t, token); got != 500 {
			t.Errorf("balance %v: the stamps of clips that could not be used did not come back", got)
		}
		// The family is told why, in their language (Spanish at sign-up).
		var told []string
		for _, m := range w.smtp.Messages() {
			if len(m.To) > 0 && m.To[0] == "ana@example.org" && strings.Contains(m.Subject, "VideoGram") {
				told = append(told, m.Text)
			}
		}
		if len(told) != 2 || !strings.Contains(strings.Join(told, "\n"), "dura más de lo que permite el centro") ||
			!strings.Contains(strings.Join(told, "\n"), "el archivo no es un video") {
			t.Errorf("mails about the failed clips: %q", told)
		}
		w.Command(t, "ledger", "verify") // fails the test if the books do not balance
	})
}

// failedClip checks that a VideoGram failed with fault, said in Spanish (Ana's
// language), that every stamp came back, that Ana was told by mail, and that the
// books balance.
func (w *world) failedClip(t *testing.T, token, contact, id string, fault media.ClipFault, said, mailed string) {
	t.Helper()
	m := w.message(t, token, contact, id)
	if m["state"] != "failed" || m["reason"] != string(fault) || m["reason_text"] != said {
		t.Errorf("the VideoGram: %v", m)
	}
	if got := w.balance(t, token); got != 500 {
		t.Errorf("balance %v: the stamps did not come back", got)
	}
	told := false
	for _, m := range w.smtp.Messages() {
		if len(m.To) > 0 && m.To[0] == "ana@example.org" && strings.Contains(m.Subject, "VideoGram") && strings.Contains(m.Text, mailed) {
			told = true
		}
	}
	if !told {
		t.Errorf("no mail to Ana says %q", mailed)
	}
	w.Command(t, "ledger", "verify") // fails the test if the books do not balance
}

// uploadWhole sends data with tus in one piece and returns the upload's id.
func (w *world) uploadWhole(t *testing.T, token string, data []byte) string {
	t.Helper()
	res := w.tus(t, token, "POST", "/api/v1/uploads", nil, "Upload-Length", strconv.Itoa(len(data)))
	loc := res.Header.Get("Location")
	if res.StatusCode != http.StatusCreated || !strings.Contains(loc, "/api/v1/uploads/") {
		t.Fatalf("create: %d %q", res.StatusCode, loc)
	}
	path := loc[strings.Index(loc, "/api/v1/uploads/"):]
	if res := w.tus(t, token, "PATCH", path, bytes.NewReader(data), "Upload-Offset", "0", "Content-Type", "application/offset+octet-stream"); res.StatusCode != http.StatusNoContent {
		t.Fatalf("upload: %d", res.StatusCode)
	}
	return path[len("/api/v1/uploads/"):]
}

// A clip whose upload is gone when its conversion begins (deleted, or on the disk
// of another server) fails at once as lost and is refunded, rather than being
// retried for a day while its message stays "processing" with its stamps taken.
func TestVideoGramWhoseUploadIsLostIsRefundedAtOnce(t *testing.T) {
	clip := testClip(t, "64x48", "1")
	eachEngine(t, map[string]string{"KINLINK_VIDEO_WORKERS": "1"}, func(t *testing.T, w *world) {
		token, contact := contactOfJose(t, w)
		w.JSON(t, "POST", "/api/v1/wallet/top-ups", map[string]any{"amount_cents": 500, "payment_token": "tok_visa"}, append(bearer(token), "Idempotency-Key", "t1")...)
		upload := w.uploadWhole(t, token, clip)
		if err := os.Remove(filepath.Join(w.Env["KINLINK_DATA_DIR"], "uploads", upload)); err != nil {
			t.Fatal(err)
		}
		res, sent := w.sendVideoGram(t, token, contact, upload, "lost")
		if res.StatusCode != http.StatusAccepted {
			t.Fatalf("send: %d %s", res.StatusCode, res.Raw)
		}
		if list := w.JobsSettled(t); apptest.Succeeded(list, videogram.ProcessJob) != 1 {
			t.Errorf("the conversion did not end at once: %+v", list)
		}
		w.failedClip(t, token, contact, sent["id"].(string), media.ClipLost,
			"El archivo subido se perdió antes de que pudiéramos procesarlo.", "el archivo subido se perdió")
	})
}

// A conversion that keeps failing for a reason of ours (here its work folder is
// not a folder) is retried; once it is given up, its clip fails as one we could
// not process, and the VideoGram is refunded and the family told, rather than
// left "processing" with its stamps taken.
func TestVideoGramWhoseConversionIsGivenUpIsRefunded(t *testing.T) {
	clip := testClip(t, "64x48", "1")
	eachEngine(t, map[string]string{"KINLINK_VIDEO_WORKERS": "1"}, func(t *testing.T, w *world) {
		token, contact := contactOfJose(t, w)
		w.JSON(t, "POST", "/api/v1/wallet/top-ups", map[string]any{"amount_cents": 500, "payment_token": "tok_visa"}, append(bearer(token), "Idempotency-Key", "t1")...)
		work := filepath.Join(w.Env["KINLINK_DATA_DIR"], "work")
		if err := os.RemoveAll(work); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(work, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		res, sent := w.sendVideoGram(t, token, contact, w.uploadWhole(t, token, clip), "given-up")
		if res.StatusCode != http.StatusAccepted {
			t.Fatalf("send: %d %s", res.StatusCode, res.Raw)
		}
		// After its first failure, the job has one attempt left, due now: not a day.
		db := dbtest.Open(t, w.Env["KINLINK_DATABASE"])
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			var attempts int
			var state string
			if err := db.Read().QueryRow("SELECT attempts, state FROM jobs WHERE kind = $1", videogram.ProcessJob).Scan(&attempts, &state); err != nil {
				t.Fatal(err)
			}
			if attempts == 1 && state == "available" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the conversion did not fail once: %d attempts, %s", attempts, state)
			}
		}
		if _, err := db.Write().Exec("UPDATE jobs SET max_attempts = 2, run_after = $1 WHERE kind = $2", time.Now().UTC(), videogram.ProcessJob); err != nil {
			t.Fatal(err)
		}
		list := w.JobsSettled(t)
		for _, j := range list {
			if j.Kind == videogram.ProcessJob && (j.State != "failed" || j.Attempts != 2) {
				t.Errorf("the conversion job: %+v", j)
			}
		}
		w.failedClip(t, token, contact, sent["id"].(string), media.ClipProcessFault, "No pudimos procesarlo.", "no pudimos procesarlo")
	})
}

// contactInTexas adds a second agency with a facility and a resident, and makes
// the resident a contact of the account of token.
func contactInTexas(t *testing.T, w *world, token string) string {
	t.Helper()
	w.Command(t, "admin", "create-agency", "--code", "TXDOC", "--name", "Texas Department of Criminal Justice", "--state", "TX")
	w.Command(t, "admin", "create-facility", "--agency", "TXDOC", "--code", "HNT", "--name", "Huntsville Unit",
		"--type", "prison", "--timezone", "America/Chicago", "--population", "1600")
	file := filepath.Join(t.TempDir(), "roster.csv")
	os.WriteFile(file, []byte("resident_id,last_name,first_name,facility_code,housing_unit,status,restrictions\nB200,Pérez,Luis,HNT,A-1,active,\n"), 0o600)
	w.Command(t, "roster", "import", "--agency", "TXDOC", file, "--apply")
	_, found := w.JSON(t, "GET", "/api/v1/residents?agency=TXDOC&resident_id=B200", nil, bearer(token)...)
	_, c := w.JSON(t, "POST", "/api/v1/contacts", map[string]any{"resident": found["residents"].([]any)[0].(map[string]any)["id"]}, bearer(token)...)
	return c["id"].(string)
}

// Expiry read the oldest thousand ready clips of all agencies and kept each
// agency's apart, so an agency that keeps clips long, with more than a thousand
// old ones, stalled it for every other. Each agency's clips are now found by its
// own cutoff: Texas's clips, past their 90 days and more than a batch of them, are
// all deleted in the run a server does as it starts, under more than a batch of
// older clips Florida keeps for ten years.
func TestVideoGramExpiryGoesByEachAgencysOwnRetention(t *testing.T) {
	clip := testClip(t, "64x48", "1")
	eachEngine(t, map[string]string{"KINLINK_VIDEO_WORKERS": "1"}, func(t *testing.T, w *world) {
		token, florida := contactOfJose(t, w)
		texas := contactInTexas(t, w, token)
		w.JSON(t, "POST", "/api/v1/wallet/top-ups", map[string]any{"amount_cents": 500, "payment_token": "tok_visa"}, append(bearer(token), "Idempotency-Key", "t1")...)
		sent := map[string]string{}
		for name, contact := range map[string]string{"florida": florida, "texas": texas} {
			res, m := w.sendVideoGram(t, token, contact, w.uploadWhole(t, token, clip), name)
			if res.StatusCode != http.StatusAccepted {
				t.Fatalf("send to %s: %d %s", name, res.StatusCode, res.Raw)
			}
			sent[name] = m["id"].(string)
		}
		if list := w.JobsSettled(t); apptest.Succeeded(list, videogram.ProcessJob) != 2 {
			t.Fatalf("conversions: %+v", list)
		}

		db := dbtest.Open(t, w.Env["KINLINK_DATABASE"])
		exec := func(query string, args ...any) {
			t.Helper()
			if _, err := db.Write().Exec(query, args...); err != nil {
				t.Fatalf("%s: %v", query, err)
			}
		}
		exec(`INSERT INTO message_policies (agency_id, videogram_retention_days) SELECT id, 3650 FROM agencies WHERE code = 'FLDOC'
			ON CONFLICT (agency_id) DO UPDATE SET videogram_retention_days = 3650`)
		floridaAt, texasAt := time.Now().UTC().AddDate(0, 0, -400), time.Now().UTC().AddDate(0, 0, -91)
		for id, at := range map[string]time.Time{sent["florida"]: floridaAt, sent["texas"]: texasAt} {
			exec("UPDATE messages SET created_at = $1 WHERE id = $2", at, id)
			exec("UPDATE videograms SET created_at = $1 WHERE message_id = $2", at, id)
		}
		// Each has a batch more of such clips: Florida's all older than Texas's.
		for name, at := range map[string]time.Time{"florida": floridaAt, "texas": texasAt} {
			exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $4)
				INSERT INTO messages (id, contact_id, account_id, resident_id, agency_id, facility_id, direction, kind, body, state, created_at)
				SELECT $3 || n.i, m.contact_id, m.account_id, m.resident_id, m.agency_id, m.facility_id, m.direction, m.kind, m.body, m.state, $2
				FROM n, messages m WHERE m.id = $1`, sent[name], at, name+"-", videogram.ExpireBatch)
			exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $4)
				INSERT INTO videograms (message_id, upload_id, limit_ms, state, created_at)
				SELECT $3 || n.i, $3 || n.i, v.limit_ms, v.state, $2 FROM n, videograms v WHERE v.message_id = $1`, sent[name], at, name+"-", videogram.ExpireBatch)
		}
		ready := func(agency string) int {
			var n int
			if err := db.Read().QueryRow(`SELECT COUNT(*) FROM videograms v JOIN messages m ON m.id = v.message_id
				JOIN agencies g ON g.id = m.agency_id WHERE g.code = $1 AND v.state = 'ready'`, agency).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}

		later := start(t, w.Env["KINLINK_DATABASE"], map[string]string{"KINLINK_DATA_DIR": w.Env["KINLINK_DATA_DIR"]})
		for deadline := time.Now().Add(90 * time.Second); ready("TXDOC") > 0; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d of Texas's %d clips were not deleted after their 90 days", ready("TXDOC"), videogram.ExpireBatch+1)
			}
		}
		if kept := ready("FLDOC"); kept != videogram.ExpireBatch+1 {
			t.Errorf("Florida keeps %d clips of %d", kept, videogram.ExpireBatch+1)
		}
		var audited int
		db.Read().QueryRow("SELECT COUNT(*) FROM audit_log WHERE action = 'videogram.deleted'").Scan(&audited)
		if audited != videogram.ExpireBatch+1 {
			t.Errorf("%d deletions audited, want Texas's %d", audited, videogram.ExpireBatch+1)
		}
		if res := later.Do(t, "GET", "/api/v1/videograms/"+sent["texas"]+"/video", nil, bearer(token)...); res.StatusCode != http.StatusNotFound {
			t.Errorf("Texas's deleted clip plays: %d", res.StatusCode)
		}
		if res := later.Do(t, "GET", "/api/v1/videograms/"+sent["florida"]+"/video", nil, bearer(token)...); res.StatusCode != http.StatusOK {
			t.Errorf("Florida's kept clip does not play: %d", res.StatusCode)
		}
		later.Command(t, "audit", "verify")
	})
}

// One upload makes one VideoGram, paid once, even when an app sends it several
// times at once with different keys (PostgreSQL runs them side by side).
func TestOneUploadMakesOneVideoGram(t *testing.T) {
	clip := testClip(t, "64x48", "1")
	eachEngine(t, nil, func(t *testing.T, w *world) {
		token, contact := contactOfJose(t, w)
		w.JSON(t, "POST", "/api/v1/wallet/top-ups", map[string]any{"amount_cents": 500, "payment_token": "tok_visa"}, append(bearer(token), "Idempotency-Key", "t1")...)
		upload := w.upload(t, token, clip)
		var wg sync.WaitGroup
		codes := make([]int, 4)
		for i := range codes {
			wg.Go(func() {
				res, _ := w.sendVideoGram(t, token, contact, upload, fmt.Sprint("once-", i))
				codes[i] = res.StatusCode
			})
		}
		wg.Wait()
		if n := slices.Index(codes, http.StatusAccepted); n < 0 || slices.Contains(codes[n+1:], http.StatusAccepted) {
			t.Fatalf("sends of one upload at once: %v, want one 202", codes)
		}
		for _, c := range codes {
			if c != http.StatusAccepted && c != http.StatusConflict {
				t.Errorf("a second send of the upload: %d, want 409", c)
			}
		}
		if got := w.balance(t, token); got != 470 {
			t.Errorf("balance %v after one VideoGram of 30 cents", got)
		}
	})
}
