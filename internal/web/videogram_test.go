package web_test

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/kinlink/kinlink/internal/apptest"
)

// testClip makes a 2-second H.264 clip with sound, or skips without ffmpeg (and
// fails when KINLINK_MEDIA_TOOLS=require, as in CI).
func testClip(t *testing.T) []byte {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		if os.Getenv("KINLINK_MEDIA_TOOLS") == "require" {
			t.Fatalf("KINLINK_MEDIA_TOOLS=require, but %v", err)
		}
		t.Skipf("skipping: %v (apt-get install ffmpeg)", err)
	}
	out := filepath.Join(t.TempDir(), "clip.mp4")
	cmd := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30:duration=2",
		"-f", "lavfi", "-i", "sine=duration=2", "-shortest", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("making a clip: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var videogramKey = regexp.MustCompile(`name="key" value="([0-9a-f]+)">\s*<input type="hidden" name="upload_id"`)

// postVideoGram posts the conversation's VideoGram form as a browser without
// JavaScript does: the key and the file.
func (w *world) postVideoGram(t *testing.T, contact, key, name string, clip []byte) (*http.Response, string) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("key", key)
	mw.WriteField("upload_id", "")
	part, _ := mw.CreateFormFile("video", name)
	part.Write(clip)
	mw.Close()
	res := w.Do(t, "POST", "/people/"+contact+"/videograms", &body, "Content-Type", mw.FormDataContentType(), "Sec-Fetch-Site", "same-origin")
	return res, readBody(t, res)
}

// A family sends a VideoGram without JavaScript; it is converted and waits for
// review; a reviewer watches it (audited) and approves it; the resident plays it at
// the kiosk (with ranges), which the family sees as watched. Nobody else gets the
// clip or its poster.
func TestVideoGramFromFamilyToKiosk(t *testing.T) {
	clip := testClip(t)
	eachEngine(t, func(t *testing.T, w *world) {
		path, fsp, admin := reviewWorld(t, w, "hola")
		contact := strings.Split(path, "/")[2]
		w.say(t, path, "Hola mijo") // a text message waits for review too
		_, page := w.get(t, path)
		if !strings.Contains(page, "Record a VideoGram") || !strings.Contains(page, "This VideoGram: 3 stamps ($0.30).") ||
			!strings.Contains(page, `data-limit="30"`) || !strings.Contains(page, `accept="video/*"`) {
			t.Fatalf("the conversation offers no VideoGram, or not its price and length:\n%s", page)
		}
		key := videogramKey.FindStringSubmatch(page)[1]

		// A double submit (no script: the file goes twice) sends it once.
		for range 2 {
			if res, page := w.postVideoGram(t, contact, key, "clip.mp4", clip); res.StatusCode != http.StatusSeeOther {
				t.Fatalf("send a VideoGram: %d\n%s", res.StatusCode, page)
			}
		}
		_, page = w.get(t, path)
		if !strings.Contains(page, "Getting your video ready") && !strings.Contains(page, "Waiting for review") {
			t.Errorf("the new VideoGram's state:\n%s", page)
		}
		w.JobsSettled(t)
		_, page = w.get(t, path)
		if strings.Count(page, `<p class="hint">VideoGram · 0:02</p>`) != 1 || !strings.Contains(page, "Waiting for review") || !strings.Contains(page, "3 stamps ($0.30)") {
			t.Fatalf("the converted VideoGram in the conversation:\n%s", page)
		}
		_, wallet := w.get(t, "/wallet")
		if !strings.Contains(wallet, `id="balance">$9.60`) {
			t.Errorf("three stamps were not taken once:\n%s", wallet)
		}
		id := regexp.MustCompile(`/videograms/([0-9a-f]+)/video`).FindStringSubmatch(page)[1]
		video, poster := "/videograms/"+id+"/video", "/videograms/"+id+"/poster"

		// The family plays it back.
		res := w.Get(t, video, "Range", "bytes=0-99")
		if res.StatusCode != http.StatusPartialContent || res.Header.Get("Cache-Control") != "private, no-store" || res.Header.Get("Content-Type") != "video/mp4" {
			t.Errorf("the family's clip: %d %v", res.StatusCode, res.Header)
		}
		res.Body.Close()

		// The reviewer: the queue names it with its length and poster; opening it plays it.
		_, queue := fsp.get(t, "/facility/review")
		if strings.Count(queue, "VideoGram · ") != 1 || !strings.Contains(queue, "VideoGram · 0:02") || !strings.Contains(queue, `src="`+poster+`"`) {
			t.Fatalf("the queue does not show the VideoGram:\n%s", queue)
		}
		_, item := fsp.get(t, "/facility/review/"+id)
		if !strings.Contains(item, `<video controls preload="metadata"`) || !strings.Contains(item, `poster="`+poster+`"`) {
			t.Fatalf("the review page does not play the VideoGram:\n%s", item)
		}
		// Playing it is many range requests (and the queue's poster another): one
		// viewing, one entry in the audit log.
		for _, r := range []string{"bytes=0-", "bytes=100-", "bytes=0-99"} {
			res = fsp.Get(t, video, "Range", r)
			if res.StatusCode != http.StatusPartialContent {
				t.Errorf("the reviewer's clip (%s): %d", r, res.StatusCode)
			}
			res.Body.Close()
		}
		fsp.get(t, poster)
		if reads := auditReads(t, admin); strings.Count(reads, "<td>videogram</td>") != 1 {
			t.Errorf("the reviewer's viewing is not audited once:\n%s", reads)
		}

		// Before it is approved, the resident does not get it.
		kiosk := residentAtKiosk(t, w, fsp)
		if res, _ := kiosk.get(t, video); res.StatusCode != http.StatusNotFound {
			t.Errorf("the resident got the clip before review: %d", res.StatusCode)
		}
		if res, _ := fsp.post(t, "/facility/review/"+id, url.Values{"decision": {"approve"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("approve: %d", res.StatusCode)
		}

		// The resident: the thread shows its poster, which leads to a full-screen
		// player; playing it marks it watched.
		_, thread := kiosk.get(t, "/kiosk/messages/"+contact)
		player := "/kiosk/messages/" + contact + "/videograms/" + id
		if !strings.Contains(thread, `href="`+player+`"`) || !strings.Contains(thread, `src="`+poster+`"`) ||
			!strings.Contains(thread, `data-video="`+video+`"`) {
			t.Fatalf("the kiosk thread does not show the VideoGram:\n%s", thread)
		}
		_, page = w.get(t, path)
		if !strings.Contains(page, `state-delivered">Delivered`) {
			t.Errorf("the family does not see it delivered:\n%s", page)
		}
		if res, page := kiosk.get(t, player); res.StatusCode != 200 || !strings.Contains(page, `src="`+video+`"`) {
			t.Fatalf("the kiosk player: %d\n%s", res.StatusCode, page)
		}
		res = kiosk.Get(t, video, "Range", "bytes=100-199")
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusPartialContent || len(body) != 100 || !bytes.Equal(body, clipRange(t, w, video, 100, 200)) {
			t.Errorf("the resident's range: %d, %d bytes", res.StatusCode, len(body))
		}
		if res, _ := kiosk.get(t, poster); res.StatusCode != 200 {
			t.Errorf("the resident's poster: %d", res.StatusCode)
		}
		_, page = w.get(t, path)
		if !strings.Contains(page, `state-read">Watched`) {
			t.Errorf("the family does not see it watched:\n%s", page)
		}

		other := stranger(t, w)

		// The kiosk's script plays a second VideoGram in its dialog, loading the
		// clip itself: that marks it watched, and nobody else's loading does.
		_, page = w.get(t, path)
		if res, _ := w.postVideoGram(t, contact, videogramKey.FindStringSubmatch(page)[1], "clip.mp4", clip); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("send a second VideoGram: %d", res.StatusCode)
		}
		w.JobsSettled(t)
		_, page = w.get(t, path)
		second := regexp.MustCompile(`/videograms/([0-9a-f]+)/video`).FindAllStringSubmatch(page, -1)[1][1]
		if res, _ := fsp.post(t, "/facility/review/"+second, url.Values{"decision": {"approve"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("approve the second: %d", res.StatusCode)
		}
		secondVideo := "/videograms/" + second + "/video"
		if res, _ := other.get(t, secondVideo); res.StatusCode != http.StatusNotFound {
			t.Errorf("someone not at the kiosk got the clip: %d", res.StatusCode)
		}
		// Another resident, at another kiosk, neither.
		w.importRoster(t, roster+"A103,Kim,Ana,FSP,B-3,active,\n")
		otherKiosk := kioskOf(t, w, fsp, "A103")
		if res, _ := otherKiosk.get(t, secondVideo); res.StatusCode != http.StatusNotFound {
			t.Errorf("another resident got the clip: %d", res.StatusCode)
		}
		if _, page := w.get(t, path); strings.Count(page, `state-read">Watched`) != 1 {
			t.Errorf("someone else's loading marked the second watched:\n%s", page)
		}
		if res, _ := kiosk.get(t, secondVideo); res.StatusCode != http.StatusOK {
			t.Errorf("the kiosk's play of the second: %d", res.StatusCode)
		}
		_, page = w.get(t, path)
		if n := strings.Count(page, `state-read">Watched`); n != 2 {
			t.Errorf("%d VideoGrams show watched, not 2:\n%s", n, page)
		}

		// Staff of another agency: not found, and nothing audited of them.
		w.operator(t, "admin", "create-agency", "--code", "TXDOC", "--name", "Texas DOC", "--state", "TX")
		w.operator(t, "admin", "create-staff", "--agency", "TXDOC", "--email", "tx.admin@example.org", "--name", "Tex", "--role", "agency_admin")
		txSecret := enrolFromMail(t, w, "tx.admin@example.org", "staff pass 43!")
		texas := w.browser(t)
		texas.portalLogin(t, "tx.admin@example.org", "staff pass 43!", txSecret)
		for _, p := range []string{video, poster} {
			if res, _ := texas.get(t, p); res.StatusCode != http.StatusNotFound {
				t.Errorf("another agency's admin got %s: %d", p, res.StatusCode)
			}
		}

		// Anyone else: not found, the clip and the poster alike.
		for _, p := range []string{video, poster} {
			if res, _ := other.get(t, p); res.StatusCode != http.StatusNotFound {
				t.Errorf("a stranger got %s: %d", p, res.StatusCode)
			}
			anon := &world{Instance: apptest.Attach(t, w.Instance)}
			if res, _ := anon.get(t, p); res.StatusCode != http.StatusNotFound {
				t.Errorf("someone signed out got %s: %d", p, res.StatusCode)
			}
		}
	})
}

// stranger is another family, signed in on a device of their own.
func stranger(t *testing.T, w *world) *world {
	t.Helper()
	s := w.browser(t)
	s.signUp(t, "bea@example.org")
	return s
}

// clipRange is bytes [from, to) of the clip as its sender gets it whole.
func clipRange(t *testing.T, w *world, video string, from, to int) []byte {
	t.Helper()
	res := w.Get(t, video)
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if len(b) < to {
		t.Fatalf("the clip has %d bytes", len(b))
	}
	return b[from:to]
}

// A file that is not a video is refused after the conversion looks at it, says why
// in the conversation, and gives the stamps back.
func TestVideoGramThatCannotBeUsedIsRefunded(t *testing.T) {
	testClip(t)
	eachEngine(t, func(t *testing.T, w *world) {
		path, _, _ := reviewWorld(t, w, "")
		contact := strings.Split(path, "/")[2]
		_, page := w.get(t, path)
		if res, page := w.postVideoGram(t, contact, videogramKey.FindStringSubmatch(page)[1], "notes.mp4", []byte("just some text, not a video at all")); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("send: %d\n%s", res.StatusCode, page)
		}
		w.JobsSettled(t)
		_, page = w.get(t, path)
		if !strings.Contains(page, "Could not be used") || !strings.Contains(page, "The file is not a video.") || !strings.Contains(page, "refunded") {
			t.Errorf("the failed VideoGram:\n%s", page)
		}
		_, wallet := w.get(t, "/wallet")
		if !strings.Contains(wallet, `id="balance">$10.00`) {
			t.Errorf("the stamps were not given back:\n%s", wallet)
		}
		// Sending without a file or upload says what to do, on the page.
		_, page = w.get(t, path)
		res, page := w.post(t, "/people/"+contact+"/videograms", url.Values{"key": {videogramKey.FindStringSubmatch(page)[1]}})
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(page, "Record a video or choose a video file first.") {
			t.Errorf("a send without a video: %d\n%s", res.StatusCode, page)
		}
	})
}

// The page's script sends the clip with the resumable upload under /uploads/ (the
// family's session), in pieces, then posts only the upload's id. Refusals answer
// JSON the script reads, and another account's upload does not exist for them.
func TestVideoGramByResumableUpload(t *testing.T) {
	clip := testClip(t)
	eachEngine(t, func(t *testing.T, w *world) {
		path, _, _ := reviewWorld(t, w, "")
		contact := strings.Split(path, "/")[2]
		tus := func(w *world, method, p string, body []byte, headers ...string) *http.Response {
			t.Helper()
			h := append([]string{"Tus-Resumable", "1.0.0", "Sec-Fetch-Site", "same-origin", "Origin", w.URL}, headers...)
			return w.Do(t, method, p, bytes.NewReader(body), h...)
		}
		res := tus(w, "POST", "/uploads/", nil, "Upload-Length", strconv.Itoa(len(clip)))
		loc := res.Header.Get("Location")
		res.Body.Close()
		if res.StatusCode != http.StatusCreated || !strings.HasPrefix(loc, "https://kinlink.example.org/uploads/") {
			t.Fatalf("create: %d %q", res.StatusCode, loc)
		}
		up := strings.TrimPrefix(loc, "https://kinlink.example.org")
		half := len(clip) / 2
		res = tus(w, "PATCH", up, clip[:half], "Upload-Offset", "0", "Content-Type", "application/offset+octet-stream")
		res.Body.Close()
		if res.StatusCode != http.StatusNoContent {
			t.Fatalf("first piece: %d", res.StatusCode)
		}
		// Someone else asking about it learns nothing.
		stranger := w.browser(t)
		stranger.signUp(t, "bea@example.org")
		if res := tus(stranger, "HEAD", up, nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("a stranger's HEAD: %d", res.StatusCode)
		}
		res = tus(w, "HEAD", up, nil)
		res.Body.Close()
		if res.Header.Get("Upload-Offset") != strconv.Itoa(half) {
			t.Fatalf("offset after the first piece: %q", res.Header.Get("Upload-Offset"))
		}
		res = tus(w, "PATCH", up, clip[half:], "Upload-Offset", strconv.Itoa(half), "Content-Type", "application/offset+octet-stream")
		res.Body.Close()
		if res.StatusCode != http.StatusNoContent {
			t.Fatalf("second piece: %d", res.StatusCode)
		}
		// Too large for a clip: refused in words the script shows.
		res = tus(w, "POST", "/uploads/", nil, "Upload-Length", strconv.Itoa(1<<40))
		var refusal struct {
			Error struct{ Code, Message string }
		}
		json.NewDecoder(res.Body).Decode(&refusal)
		res.Body.Close()
		if res.StatusCode != http.StatusRequestEntityTooLarge || refusal.Error.Code != "upload_too_large" || !strings.Contains(refusal.Error.Message, "MB") {
			t.Errorf("a too-large upload: %d %+v", res.StatusCode, refusal)
		}

		_, page := w.get(t, path)
		uploadID := up[strings.LastIndex(up, "/")+1:]
		if res, page := w.post(t, "/people/"+contact+"/videograms", url.Values{"key": {videogramKey.FindStringSubmatch(page)[1]}, "upload_id": {uploadID}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("send by upload id: %d\n%s", res.StatusCode, page)
		}
		w.JobsSettled(t)
		if _, page := w.get(t, path); !strings.Contains(page, `<p class="hint">VideoGram · 0:02</p>`) || !strings.Contains(page, "Waiting for review") {
			t.Errorf("the uploaded VideoGram:\n%s", page)
		}
	})
}

// Issue 14: an agency admin sets the VideoGram price, whether clips are reviewed and
// how long they are kept; a bad number is said on its field and keeps what was typed.
func TestVideoGramSettings(t *testing.T) {
	clip := testClip(t)
	eachEngine(t, func(t *testing.T, w *world) {
		path, _, admin := reviewWorld(t, w, "hola")
		contact := strings.Split(path, "/")[2]
		_, page := admin.get(t, "/facility/review")
		if !strings.Contains(page, `id="videogram_stamps" name="videogram_stamps" value="3"`) || !strings.Contains(page, `name="review_videograms" checked`) ||
			!strings.Contains(page, `value="90"`) {
			t.Fatalf("the VideoGram settings and their defaults:\n%s", page)
		}
		settings := func(stamps, days, review string) url.Values {
			v := url.Values{"watch": {"hola"}, "videogram_settings": {"1"}, "videogram_stamps": {stamps}, "videogram_retention_days": {days}}
			if review != "" {
				v.Set("review_videograms", review)
			}
			return v
		}
		if res, page := admin.post(t, "/facility/review/settings", settings("11", "30", "on")); res.StatusCode != 400 ||
			!strings.Contains(page, "from 1 to 10") || !strings.Contains(page, `value="11"`) {
			t.Errorf("an 11-stamp VideoGram: %d", res.StatusCode)
		}
		if res, page := admin.post(t, "/facility/review/settings", settings("2", "3", "on")); res.StatusCode != 400 || !strings.Contains(page, "from 7 to 3650") {
			t.Errorf("clips kept 3 days: %d", res.StatusCode)
		}
		if res, _ := admin.post(t, "/facility/review/settings", settings("2", "30", "")); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("save: %d", res.StatusCode)
		}
		// A form without the VideoGram fields (no such fieldset) changes none of them.
		if res, _ := admin.post(t, "/facility/review/settings", url.Values{"watch": {"hola"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("save without them: %d", res.StatusCode)
		}
		_, page = w.get(t, path)
		if !strings.Contains(page, "This VideoGram: 2 stamps ($0.20).") {
			t.Fatalf("the new price is not shown:\n%s", page)
		}
		key := videogramKey.FindStringSubmatch(page)[1]
		if res, page := w.postVideoGram(t, contact, key, "clip.mp4", clip); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("send: %d\n%s", res.StatusCode, page)
		}
		w.JobsSettled(t)
		// Clips are not reviewed at this agency now: it is delivered at once.
		if _, page = w.get(t, path); !strings.Contains(page, "VideoGram · 0:02") || strings.Contains(page, "Waiting for review") {
			t.Errorf("a VideoGram where clips are not reviewed:\n%s", page)
		}
	})
}

// Issue 14: "optional when it is watched". A family that did not ask gets no mail
// when its VideoGram is played; one that asked on the account page gets one mail,
// in its language, the first time the resident plays it, however many times and
// from however many requests at once the kiosk plays it.
func TestVideoGramWatchedMailOnlyWhenAsked(t *testing.T) {
	clip := testClip(t)
	eachEngine(t, func(t *testing.T, w *world) {
		path, fsp, _ := reviewWorld(t, w, "")
		contact := strings.Split(path, "/")[2]
		kiosk := residentAtKiosk(t, w, fsp)
		clipID := regexp.MustCompile(`/videograms/([0-9a-f]+)/video`)
		// send sends a VideoGram, lets it be converted and approves it; it returns
		// its clip's address.
		send := func(n int) string {
			t.Helper()
			_, page := w.get(t, path)
			if res, page := w.postVideoGram(t, contact, videogramKey.FindStringSubmatch(page)[1], "clip.mp4", clip); res.StatusCode != http.StatusSeeOther {
				t.Fatalf("send VideoGram %d: %d\n%s", n, res.StatusCode, page)
			}
			w.JobsSettled(t)
			_, page = w.get(t, path)
			all := clipID.FindAllStringSubmatch(page, -1)
			if len(all) != n {
				t.Fatalf("%d VideoGrams in the conversation, want %d", len(all), n)
			}
			id := all[n-1][1]
			if res, _ := fsp.post(t, "/facility/review/"+id, url.Values{"decision": {"approve"}}); res.StatusCode != http.StatusSeeOther {
				t.Fatalf("approve VideoGram %d: %d", n, res.StatusCode)
			}
			return "/videograms/" + id + "/video"
		}
		play := func(video string) {
			t.Helper()
			res := kiosk.Get(t, video, "Range", "bytes=0-99")
			if apptest.Body(t, res); res.StatusCode != http.StatusPartialContent {
				t.Fatalf("the kiosk plays %s: %d", video, res.StatusCode)
			}
		}
		watchedMail := func() []string {
			t.Helper()
			w.JobsSettled(t) // every mail queued is sent by now
			var got []string
			for _, m := range w.smtp.Messages() {
				if m.To[0] == "ana@example.org" && (strings.Contains(m.Subject, "watched your VideoGram") || strings.Contains(m.Subject, "vio su VideoGram")) {
					got = append(got, m.Subject+"\n"+m.Text+"\n"+m.HTML)
				}
			}
			return got
		}

		// Off unless asked: played twice, the first VideoGram mails nothing.
		first := send(1)
		play(first)
		play(first)
		if _, page := w.get(t, path); !strings.Contains(page, `state-read">Watched`) {
			t.Fatalf("the first VideoGram does not show watched:\n%s", page)
		}
		if got := watchedMail(); len(got) != 0 {
			t.Errorf("a family that did not ask got %d mails:\n%s", len(got), got)
		}

		// Asked for, in Spanish.
		if res, _ := w.post(t, "/account/settings", url.Values{"locale": {"es"}, "email_when_videogram_watched": {"on"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("ask for the mail: %d", res.StatusCode)
		}
		second := send(2)
		var wg sync.WaitGroup
		for range 4 { // the player's range requests, all at once
			wg.Go(func() {
				req, _ := http.NewRequest("GET", kiosk.URL+second, nil)
				req.Header.Set("Range", "bytes=0-99")
				if res, err := kiosk.Client.Do(req); err == nil {
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
			})
		}
		wg.Wait()
		play(second)
		play(first) // watched long ago: nothing now either
		got := watchedMail()
		if len(got) != 1 {
			t.Fatalf("%d mails for one VideoGram watched, want 1:\n%s", len(got), got)
		}
		mail := got[0]
		for _, want := range []string{
			"José García vio su VideoGram\n",
			"José García vio el VideoGram que usted envió el ",
			"Vea la conversación: https://kinlink.example.org/people/" + contact + "/messages#latest",
			"«Enviarme un correo cuando vean un VideoGram que envié»", // the box's words on the account page
			`<html lang="es">`, `<bdi>José García</bdi>`,
		} {
			if !strings.Contains(mail, want) {
				t.Errorf("the mail lacks %q:\n%s", want, mail)
			}
		}
		if !regexp.MustCompile(`envió el \d{1,2}/\d{2}/20\d\d \d{2}:\d{2} UTC\.`).MatchString(mail) {
			t.Errorf("the mail does not say when the VideoGram was sent, as Spanish writes dates:\n%s", mail)
		}
	})
}
