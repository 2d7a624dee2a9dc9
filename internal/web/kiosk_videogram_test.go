package web_test

import (
	"bytes"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var kioskVideoGramKey = regexp.MustCompile(`action="/kiosk/messages/[0-9a-f]+/videograms#videogram"[^>]*>\s*<input type="hidden" name="key" value="([0-9a-f]+)">`)

// tusUpload sends a clip with the resumable upload under base ("/uploads/" for a
// family, "/kiosk/uploads/" for a resident), in two pieces, as the page's script
// does, and returns the upload's id (or fails with what the server said).
func tusUpload(t *testing.T, w *world, base string, clip []byte) string {
	t.Helper()
	tus := func(method, p string, body []byte, headers ...string) *http.Response {
		t.Helper()
		h := append([]string{"Tus-Resumable", "1.0.0", "Sec-Fetch-Site", "same-origin", "Origin", w.URL}, headers...)
		return w.Do(t, method, p, bytes.NewReader(body), h...)
	}
	res := tus("POST", base, nil, "Upload-Length", strconv.Itoa(len(clip)))
	loc := res.Header.Get("Location")
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("create an upload: %d", res.StatusCode)
	}
	up := strings.TrimPrefix(loc, "https://kinlink.example.org")
	half := len(clip) / 2
	for _, piece := range [][2]int{{0, half}, {half, len(clip)}} {
		res = tus("PATCH", up, clip[piece[0]:piece[1]], "Upload-Offset", strconv.Itoa(piece[0]), "Content-Type", "application/offset+octet-stream")
		res.Body.Close()
		if res.StatusCode != http.StatusNoContent {
			t.Fatalf("piece at %d: %d", piece[0], res.StatusCode)
		}
	}
	return up[strings.LastIndex(up, "/")+1:]
}

// videogramReplies turns residents' VideoGram replies on or off, keeping the
// agency's other VideoGram settings at their defaults.
func videogramReplies(t *testing.T, admin *world, on bool, replyPrice string) {
	t.Helper()
	v := url.Values{"watch": {""}, "reply_price_stamps": {replyPrice}, "videogram_settings": {"1"}, "videogram_stamps": {"3"},
		"videogram_retention_days": {"90"}, "review_videograms": {"on"}}
	if on {
		v.Set("videogram_replies", "on")
	}
	if res, page := admin.post(t, "/facility/review/settings", v); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("save the VideoGram settings: %d\n%s", res.StatusCode, page)
	}
}

// Issue 14: where the agency allows it, a resident records a VideoGram reply at the
// kiosk. It is uploaded as the resident's own (nobody else can touch the upload),
// converted, and reviewed before the family sees it; the resident sees its state
// and can play it back; once approved, the family is told by mail, sees it as a
// new reply and can play it. Where the agency has not allowed it, the kiosk offers
// nothing and refuses a reply sent anyway.
func TestResidentRecordsAVideoGramReply(t *testing.T) {
	clip := testClip(t)
	eachEngine(t, func(t *testing.T, w *world) {
		path, fsp, admin := reviewWorld(t, w, "")
		contact := strings.Split(path, "/")[2]
		thread := "/kiosk/messages/" + contact
		kiosk := residentAtKiosk(t, w, fsp)

		// Off by default: no recorder, and a reply sent anyway is refused in words.
		_, page := admin.get(t, "/facility/review")
		if !strings.Contains(page, `name="videogram_replies" aria-describedby`) || strings.Contains(page, `name="videogram_replies" checked`) {
			t.Fatalf("the setting, off by default:\n%s", page)
		}
		if _, tp := kiosk.get(t, thread); strings.Contains(tp, "Record a VideoGram") {
			t.Fatalf("the kiosk offers VideoGram replies the agency has not allowed:\n%s", tp)
		}
		early := tusUpload(t, kiosk, "/kiosk/uploads/", clip)
		if res, page := kiosk.post(t, thread+"/videograms", url.Values{"key": {"0123456789abcdef0123456789abcdef"}, "upload_id": {early}}); res.StatusCode != http.StatusForbidden ||
			!strings.Contains(page, "VideoGram replies cannot be recorded here") {
			t.Fatalf("a VideoGram reply where they are off: %d\n%s", res.StatusCode, page)
		}

		videogramReplies(t, admin, true, "0")
		_, tp := kiosk.get(t, thread)
		if !strings.Contains(tp, "Record a VideoGram") || !strings.Contains(tp, `data-limit="30"`) || !strings.Contains(tp, "Replies are free.") ||
			strings.Contains(tp, `type="file"`) {
			t.Fatalf("the kiosk's VideoGram reply section:\n%s", tp)
		}
		key := kioskVideoGramKey.FindStringSubmatch(tp)[1]

		// The resident's upload is theirs alone: the family cannot send it as
		// theirs, and the resident cannot send the family's.
		upload := tusUpload(t, kiosk, "/kiosk/uploads/", clip)
		for _, p := range []string{"/uploads/" + upload, "/kiosk/uploads/" + upload} {
			res := w.Do(t, "HEAD", p, nil, "Tus-Resumable", "1.0.0")
			res.Body.Close()
			if res.StatusCode != http.StatusNotFound && res.StatusCode != http.StatusSeeOther || res.Header.Get("Upload-Offset") != "" {
				t.Errorf("the family asked after the resident's upload at %s: %d %q", p, res.StatusCode, res.Header.Get("Upload-Offset"))
			}
		}
		_, fp := w.get(t, path)
		if res, _ := w.post(t, "/people/"+contact+"/videograms", url.Values{"key": {videogramKey.FindStringSubmatch(fp)[1]}, "upload_id": {upload}}); res.StatusCode != http.StatusNotFound {
			t.Errorf("the family sent the resident's upload: %d", res.StatusCode)
		}
		w.importRoster(t, roster+"A103,Kim,Ana,FSP,B-3,active,\n")
		otherKiosk := kioskOf(t, w, fsp, "A103")
		for _, method := range []string{"HEAD", "PATCH", "DELETE"} {
			res := otherKiosk.Do(t, method, "/kiosk/uploads/"+upload, nil, "Tus-Resumable", "1.0.0", "Upload-Offset", "0",
				"Content-Type", "application/offset+octet-stream", "Sec-Fetch-Site", "same-origin", "Origin", otherKiosk.URL)
			res.Body.Close()
			if res.StatusCode != http.StatusNotFound {
				t.Errorf("another resident's %s of the upload: %d", method, res.StatusCode)
			}
		}
		familyUpload := tusUpload(t, w, "/uploads/", clip)
		if res, _ := kiosk.post(t, thread+"/videograms", url.Values{"key": {key}, "upload_id": {familyUpload}}); res.StatusCode != http.StatusNotFound {
			t.Errorf("the resident sent the family's upload: %d", res.StatusCode)
		}

		// Sent twice (a double tap), it is one reply.
		for range 2 {
			if res, page := kiosk.post(t, thread+"/videograms", url.Values{"key": {key}, "upload_id": {upload}}); res.StatusCode != http.StatusSeeOther {
				t.Fatalf("send the VideoGram reply: %d\n%s", res.StatusCode, page)
			}
		}
		w.JobsSettled(t)
		_, tp = kiosk.get(t, thread)
		if strings.Count(tp, `state-in_review">Waiting for review`) != 1 {
			t.Fatalf("the resident's reply is not shown waiting for review, once:\n%s", tp)
		}
		id := regexp.MustCompile(`/videograms/([0-9a-f]+)/video`).FindStringSubmatch(tp)[1]
		video := "/videograms/" + id + "/video"
		// The resident plays it back; the family gets nothing of it yet.
		if res, _ := kiosk.get(t, video); res.StatusCode != http.StatusOK {
			t.Errorf("the resident's own clip: %d", res.StatusCode)
		}
		if _, fp := w.get(t, path); strings.Contains(fp, id) {
			t.Errorf("the family sees the reply before review:\n%s", fp)
		}
		if res, _ := w.get(t, video); res.StatusCode != http.StatusNotFound {
			t.Errorf("the family got the clip before review: %d", res.StatusCode)
		}

		// The reviewer sees whose reply it is, and approves it.
		_, queue := fsp.get(t, "/facility/review")
		if !strings.Contains(queue, "Reply to <bdi>Ana García</bdi>") || !strings.Contains(queue, "VideoGram · 0:02") {
			t.Fatalf("the queue does not show the resident's reply:\n%s", queue)
		}
		w.JobsSettled(t) // every mail so far has gone
		mails := countMailsTo(w, "ana@example.org")
		if res, _ := fsp.post(t, "/facility/review/"+id, url.Values{"decision": {"approve"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("approve: %d", res.StatusCode)
		}
		if m := w.lastMailTo(t, "ana@example.org", mails+1); !strings.Contains(m.Subject, "replied") {
			t.Errorf("the family is not told of the reply: %q", m.Subject)
		}
		_, fp = w.get(t, "/people")
		if !strings.Contains(fp, "1 new reply") {
			t.Errorf("the family's people list does not count the new reply:\n%s", fp)
		}
		_, fp = w.get(t, path)
		if !strings.Contains(fp, `src="`+video+`"`) {
			t.Fatalf("the family does not see the approved reply:\n%s", fp)
		}
		res := w.Get(t, video, "Range", "bytes=0-99")
		res.Body.Close()
		if res.StatusCode != http.StatusPartialContent {
			t.Errorf("the family's play of the reply: %d", res.StatusCode)
		}
		if _, tp := kiosk.get(t, thread); !strings.Contains(tp, `state-read">Read by your contact`) {
			t.Errorf("the resident does not see the family saw it:\n%s", tp)
		}
	})
}

// countMailsTo is how many mails have reached an address so far.
func countMailsTo(w *world, to string) int {
	n := 0
	for _, m := range w.smtp.Messages() {
		if m.To[0] == to {
			n++
		}
	}
	return n
}

// Where replies are priced, a VideoGram reply uses a reply the family prepaid; one
// that review turns back, or that cannot be used, gives it back, and the resident
// sees why.
func TestVideoGramRepliesUsePrepaidRepliesAndGiveThemBack(t *testing.T) {
	clip := testClip(t)
	eachEngine(t, func(t *testing.T, w *world) { pricedVideoGramReplies(t, w, clip) })
}

func pricedVideoGramReplies(t *testing.T, w *world, clip []byte) {
	path, fsp, admin := reviewWorld(t, w, "")
	contact := strings.Split(path, "/")[2]
	thread := "/kiosk/messages/" + contact
	videogramReplies(t, admin, true, "1")
	kiosk := residentAtKiosk(t, w, fsp)

	_, tp := kiosk.get(t, thread)
	if !strings.Contains(tp, "Record a VideoGram") || !strings.Contains(tp, "has not paid for one yet") || kioskVideoGramKey.MatchString(tp) {
		t.Fatalf("without a prepaid reply the kiosk says so and offers no recorder:\n%s", tp)
	}
	_, page := w.get(t, path)
	w.post(t, path, url.Values{"key": {sendKey.FindStringSubmatch(page)[1]}, "text": {"Con respuesta pagada"}, "prepaid_reply": {"on"}})
	_, tp = kiosk.get(t, thread)
	if !strings.Contains(tp, "Your reply is paid for") || !kioskVideoGramKey.MatchString(tp) {
		t.Fatalf("with a prepaid reply the kiosk offers the recorder:\n%s", tp)
	}

	// Review turns it back: the resident sees why, and the prepaid reply is back.
	// Sent twice with the last prepaid reply (a double tap), it is one reply.
	up := tusUpload(t, kiosk, "/kiosk/uploads/", clip)
	for range 2 {
		if res, page := kiosk.post(t, thread+"/videograms", url.Values{"key": {kioskVideoGramKey.FindStringSubmatch(tp)[1]}, "upload_id": {up}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("send: %d\n%s", res.StatusCode, page)
		}
	}
	if _, tp := kiosk.get(t, thread); strings.Contains(tp, "Your reply is paid for") {
		t.Errorf("the prepaid reply is still offered while the VideoGram uses it:\n%s", tp)
	}
	w.JobsSettled(t)
	_, tp = kiosk.get(t, thread)
	id := regexp.MustCompile(`/videograms/([0-9a-f]+)/video`).FindStringSubmatch(tp)[1]
	if res, page := fsp.post(t, "/facility/review/"+id, url.Values{"decision": {"reject"}, "reason": {"coded_language"}, "note": {"Hable claro"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("reject: %d\n%s", res.StatusCode, page)
	}
	_, tp = kiosk.get(t, thread)
	if !strings.Contains(tp, `state-rejected">Not sent`) || !strings.Contains(tp, "Hable claro") || !strings.Contains(tp, "Your reply is paid for") {
		t.Fatalf("after a rejection the resident sees why and has the prepaid reply back:\n%s", tp)
	}
	if _, fp := w.get(t, path); strings.Contains(fp, id) {
		t.Errorf("the family sees a rejected reply:\n%s", fp)
	}

	// A file that is not a video cannot be used: said, and given back too.
	up = tusUpload(t, kiosk, "/kiosk/uploads/", []byte("not a video at all, just words"))
	if res, page := kiosk.post(t, thread+"/videograms", url.Values{"key": {kioskVideoGramKey.FindStringSubmatch(tp)[1]}, "upload_id": {up}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("send: %d\n%s", res.StatusCode, page)
	}
	w.JobsSettled(t)
	_, tp = kiosk.get(t, thread)
	if !strings.Contains(tp, `state-failed">Could not be used`) || !strings.Contains(tp, "The file is not a video.") || !strings.Contains(tp, "Your reply is paid for") {
		t.Fatalf("after a clip that cannot be used the resident sees why and has the prepaid reply back:\n%s", tp)
	}
}
