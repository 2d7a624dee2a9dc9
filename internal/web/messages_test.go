package web_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/kinlink/kinlink/internal/apptest"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/media/mediatest"
)

// approvedContact sets up FLDOC, José García (A100 at FSP), a family signed in on w,
// and an approved contact between them; it returns the contact id and the FSP
// admin, signed in to the portal.
func approvedContact(t *testing.T, w *world, email string) (contactID string, fspAdmin *world) {
	t.Helper()
	setupAgency(t, w)
	w.importRoster(t, roster)
	w.signUp(t, email)
	_, login := w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": email, "password": password})
	auth := []string{"Authorization", "Bearer " + login["token"].(string)}
	_, found := w.JSON(t, "GET", "/api/v1/residents?agency=FLDOC&resident_id=A100", nil, auth...)
	resident := found["residents"].([]any)[0].(map[string]any)
	_, c := w.JSON(t, "POST", "/api/v1/contacts", map[string]any{"resident": resident["id"]}, auth...)
	adminSecret := w.enrolStaff(t, "fsp.admin@example.org", "staff pass 42!", "--role", "facility_admin", "--facility", "FSP")
	staff := w.browser(t)
	staff.portalLogin(t, "fsp.admin@example.org", "staff pass 42!", adminSecret)
	if res, _ := staff.post(t, "/facility/contacts/"+c["id"].(string), url.Values{"decision": {"approve"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("approve contact: %d", res.StatusCode)
	}
	return c["id"].(string), staff
}

var sendKey = regexp.MustCompile(`name="key" value="([0-9a-f]+)"`)

func (w *world) topUp(t *testing.T, dollars string) {
	t.Helper()
	_, page := w.get(t, "/wallet")
	key := sendKey.FindStringSubmatch(page)[1]
	if res, _ := w.post(t, "/wallet/top-ups", url.Values{"key": {key}, "amount": {dollars}, "card": {"tok_visa"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("top-up: %d", res.StatusCode)
	}
}

func TestFamilySendsAMessage(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		contact, _ := approvedContact(t, w, "ana@example.org")
		path := "/people/" + contact + "/messages"
		res, page := w.get(t, path)
		if res.StatusCode != 200 || !strings.Contains(page, "José García") || !strings.Contains(page, "No messages yet") {
			t.Fatalf("conversation page: %d\n%s", res.StatusCode, page)
		}
		key := sendKey.FindStringSubmatch(page)[1]
		// The cost of the message being written shows before sending (the page's
		// script updates it as photos are chosen), and a refused send comes back
		// scrolled to the form, where the error is.
		if !strings.Contains(page, "This message: 1 stamp ($0.10).") || !strings.Contains(page, `action="`+path+`#write"`) ||
			!strings.Contains(page, `data-single="%d stamp" data-plural="%d stamps"`) {
			t.Errorf("the form does not say what the message costs, or does not come back to itself:\n%s", page)
		}

		// No money: the message is refused and what was typed stays.
		res, page = w.post(t, path, url.Values{"key": {key}, "text": {"Hola mijo, te quiero mucho."}})
		if res.StatusCode != http.StatusPaymentRequired || !strings.Contains(page, "not enough money") || !strings.Contains(page, "Hola mijo, te quiero mucho.") {
			t.Fatalf("send without money: %d", res.StatusCode)
		}
		// With a photo, the wallet is checked before the photo is decoded.
		if res, page := w.sendForm(t, path, key, "Hola mijo, con foto.", []byte("not a picture")); res.StatusCode != http.StatusPaymentRequired ||
			!strings.Contains(page, "not enough money") || !strings.Contains(page, "Hola mijo, con foto.") {
			t.Errorf("a photo without money: %d", res.StatusCode)
		}
		if res, page := w.post(t, path, url.Values{"key": {key}, "text": {"   "}}); res.StatusCode != 400 || !strings.Contains(page, "Write something") ||
			!strings.Contains(page, `aria-describedby="text-count form-message" autofocus`) {
			t.Errorf("empty message: %d", res.StatusCode)
		}
		long := strings.Repeat("palabra ", 1000)
		if res, page := w.post(t, path, url.Values{"key": {key}, "text": {long}}); res.StatusCode != 400 || !strings.Contains(page, "too long") || !strings.Contains(page, "palabra palabra") {
			t.Errorf("too long: %d", res.StatusCode)
		}

		w.topUp(t, "5")
		// A double submit sends once and takes one stamp.
		for range 2 {
			if res, _ := w.post(t, path, url.Values{"key": {key}, "text": {"Hola mijo, te quiero mucho."}}); res.StatusCode != http.StatusSeeOther {
				t.Fatalf("send: %d", res.StatusCode)
			}
		}
		_, page = w.get(t, path+"?sent=1")
		if strings.Count(page, "Hola mijo, te quiero mucho.") != 1 || !strings.Contains(page, "Delivered") || !strings.Contains(page, "Your message was sent") ||
			!strings.Contains(page, "1 stamp ($0.10)") {
			t.Fatalf("after sending:\n%s", page)
		}
		_, wallet := w.get(t, "/wallet")
		if !strings.Contains(wallet, `id="balance">$4.`) {
			t.Errorf("one stamp was not taken once:\n%s", wallet)
		}
		// The history says whom the message was to, and when, in a <time> the page's
		// script shows in the reader's own time zone.
		if !strings.Contains(wallet, "Message · José García") || !strings.Contains(wallet, `<time datetime="`) {
			t.Errorf("the wallet history:\n%s", wallet)
		}

		// Another family cannot read or write this conversation.
		other := w.browser(t)
		other.signUp(t, "other@example.org")
		if res, page := other.get(t, path); res.StatusCode != 404 || strings.Contains(page, "Hola mijo") {
			t.Errorf("another family opened the conversation: %d", res.StatusCode)
		}
		if res, _ := other.post(t, path, url.Values{"key": {"k"}, "text": {"hi"}}); res.StatusCode != 404 {
			t.Errorf("another family wrote to the conversation: %d", res.StatusCode)
		}
		if out := w.operator(t, "ledger", "verify"); !strings.Contains(out, "ledger verified") {
			t.Errorf("ledger: %s", out)
		}
	})
}

func TestWatchListSendsAMessageToReview(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		contact, fsp := approvedContact(t, w, "ana@example.org")
		path := "/people/" + contact + "/messages"
		w.topUp(t, "5")

		adminSecret := w.enrolStaff(t, "agency.admin@example.org", "staff pass 44!", "--role", "agency_admin")
		admin := w.browser(t)
		admin.portalLogin(t, "agency.admin@example.org", "staff pass 44!", adminSecret)
		if res, page := admin.post(t, "/facility/review/settings", url.Values{"watch": {"gun\n" + strings.Repeat("x", 101)}}); res.StatusCode != 400 ||
			!strings.Contains(page, "cannot be used in the watch list") || !strings.Contains(page, "gun\n") {
			t.Fatalf("a bad watch phrase: %d", res.StatusCode)
		}
		var many []string
		for i := range 1001 {
			many = append(many, fmt.Sprint("w", i))
		}
		if res, page := admin.post(t, "/facility/review/settings", url.Values{"watch": {strings.Join(many, "\n")}}); res.StatusCode != 400 ||
			!strings.Contains(page, "at most 1000 words and phrases") {
			t.Errorf("a watch list of 1001 lines: %d", res.StatusCode)
		}
		if res, _ := admin.post(t, "/facility/review/settings", url.Values{"watch": {"gun\n  tres leches  \n"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("save watch list: %d", res.StatusCode)
		}

		send := func(text string) {
			t.Helper()
			_, page := w.get(t, path)
			if res, _ := w.post(t, path, url.Values{"key": {sendKey.FindStringSubmatch(page)[1]}, "text": {text}}); res.StatusCode != http.StatusSeeOther {
				t.Fatalf("send %q: %d", text, res.StatusCode)
			}
		}
		send("The work has begun.") // "gun" inside a word: delivered
		send("Bring the GUN tonight.")
		send("Mamá hizo TRES LECHES.")
		_, page := w.get(t, path)
		if strings.Count(page, "Waiting for review") != 2 || strings.Count(page, "Delivered") != 1 {
			t.Fatalf("states after sending:\n%s", page)
		}

		// A reviewer at another facility sees nothing; FSP's admin sees both, with how
		// they start and the watch list's words marked.
		lciSecret := w.enrolStaff(t, "lci.mail@example.org", "staff pass 45!", "--role", "mail_reviewer", "--facility", "LCI")
		lci := w.browser(t)
		lci.portalLogin(t, "lci.mail@example.org", "staff pass 45!", lciSecret)
		if _, page := lci.get(t, "/facility/review"); !strings.Contains(page, "No messages are waiting") {
			t.Errorf("an LCI reviewer sees FSP mail")
		}
		_, queue := fsp.get(t, "/facility/review")
		ids := regexp.MustCompile(`href="/facility/review/([0-9a-f]+)"`).FindAllStringSubmatch(queue, -1)
		if len(ids) != 2 || !strings.Contains(queue, "Bring the <mark>GUN</mark> tonight.") || !strings.Contains(queue, "“gun”") {
			t.Fatalf("the FSP queue:\n%s", queue)
		}
		if !strings.Contains(queue, "waiting less than a minute") {
			t.Errorf("the queue does not say in words how long each message waited:\n%s", queue)
		}
		gun := ids[0][1]
		if res, _ := lci.get(t, "/facility/review/"+gun); res.StatusCode != 404 {
			t.Errorf("an LCI reviewer opened FSP mail: %d", res.StatusCode)
		}
		if res, page := fsp.get(t, "/facility/review/"+gun); res.StatusCode != 200 || !strings.Contains(page, "Bring the <mark>GUN</mark> tonight.") ||
			!strings.Contains(page, `id="message-from">Ana García</strong>`) {
			t.Fatalf("open: %d\n%s", res.StatusCode, page)
		}
		if res, page := fsp.post(t, "/facility/review/"+gun, url.Values{"decision": {"reject"}, "note": {"No weapons talk."}}); res.StatusCode != 400 ||
			!strings.Contains(page, "Choose a reason") || !strings.Contains(page, "No weapons talk.") ||
			!strings.Contains(page, `<select id="reason" name="reason" aria-invalid="true"`) {
			t.Errorf("reject without a reason: %d", res.StatusCode)
		}
		if res, _ := fsp.post(t, "/facility/review/"+gun, url.Values{"decision": {"reject"}, "reason": {"threat"}, "note": {"No weapons talk."}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("reject: %d", res.StatusCode)
		}
		if res, _ := fsp.post(t, "/facility/review/"+gun, url.Values{"decision": {"approve"}}); res.StatusCode != http.StatusConflict {
			t.Errorf("a second decision: %d", res.StatusCode)
		}
		if res, _ := fsp.post(t, "/facility/review/"+ids[1][1], url.Values{"decision": {"approve"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("approve: %d", res.StatusCode)
		}

		// The family sees why, gets the stamp back, and is told by mail.
		_, page = w.get(t, path)
		if !strings.Contains(page, "Not delivered") || !strings.Contains(page, "A threat to someone&#39;s safety: No weapons talk. The stamp was refunded") || strings.Count(page, "Delivered") != 2 {
			t.Errorf("the family's view after review:\n%s", page)
		}
		// The mail says what the page says: the same reason, to whom, and where.
		if m := w.lastMailTo(t, "ana@example.org", 3); !strings.Contains(m.Text, "Reason: A threat to someone's safety") || !strings.Contains(m.Text, "No weapons talk.") ||
			!strings.Contains(m.Subject, "to José García") || !strings.Contains(m.Text, "The message's stamp ($0.10) is back") ||
			!strings.Contains(m.Text, path+"#latest") {
			t.Errorf("rejection mail:\n%s\n%s", m.Subject, m.Text)
		}
		_, wallet := w.get(t, "/wallet")
		if !strings.Contains(wallet, "Refund · José García") { // the history line, not the refund section
			t.Errorf("no refund in the wallet:\n%s", wallet)
		}
		if out := w.operator(t, "ledger", "verify"); !strings.Contains(out, "ledger verified") {
			t.Errorf("ledger: %s", out)
		}
		if out := w.operator(t, "audit", "verify"); !strings.Contains(out, "intact") {
			t.Errorf("audit: %s", out)
		}
		_, audit := admin.get(t, "/facility/audit")
		if !strings.Contains(audit, "message.read") || !strings.Contains(audit, "message.rejected") {
			t.Errorf("the audit log does not show the read and the decision")
		}
	})
}

// residentAtKiosk enrols a kiosk at FSP, gives A100 a PIN, and signs José in on it.
func residentAtKiosk(t *testing.T, w, fspAdmin *world) *world {
	t.Helper()
	return kioskOf(t, w, fspAdmin, "A100")
}

// kioskOf is a resident of FSP (by number) signed in at a kiosk of its own.
func kioskOf(t *testing.T, w, fspAdmin *world, number string) *world {
	t.Helper()
	_, page := fspAdmin.get(t, "/facility/kiosks")
	fspID := regexp.MustCompile(`<option value="([0-9a-f]+)">Florida State Prison</option>`).FindStringSubmatch(page)[1]
	_, page = fspAdmin.post(t, "/facility/kiosks", url.Values{"facility": {fspID}, "name": {"Unit B dayroom"}})
	code := regexp.MustCompile(`id="kiosk-code">([A-Z0-9-]+)<`).FindStringSubmatch(page)[1]
	_, page = fspAdmin.get(t, "/facility/residents?q="+number)
	rid := regexp.MustCompile(`/facility/residents/([0-9a-f]+)/pin`).FindStringSubmatch(page)[1]
	fspAdmin.post(t, "/facility/residents/"+rid+"/pin", url.Values{"pin": {"4826"}})
	kiosk := w.browser(t)
	kiosk.post(t, "/kiosk/enrol", url.Values{"code": {code}})
	kiosk.post(t, "/kiosk/login", url.Values{"resident_id": {number}, "pin": {"4826"}})
	if res, _ := kiosk.post(t, "/kiosk/pin", url.Values{"pin": {"5937"}, "pin_again": {"5937"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("resident PIN change: %d", res.StatusCode)
	}
	return kiosk
}

func TestResidentReadsAndRepliesAtTheKiosk(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		contact, fsp := approvedContact(t, w, "ana@example.org")
		path := "/people/" + contact + "/messages"
		w.topUp(t, "5")
		kiosk := residentAtKiosk(t, w, fsp)

		res, latest := kiosk.get(t, "/kiosk/latest")
		if res.StatusCode != 200 || !strings.Contains(latest, `"latest"`) {
			t.Fatalf("kiosk latest: %d %s", res.StatusCode, latest)
		}
		// An open kiosk page waits for news; a delivery answers it.
		var before struct{ Latest string }
		json.Unmarshal([]byte(latest), &before)
		news := make(chan string, 1)
		go func() {
			res, err := kiosk.Client.Get(kiosk.URL + "/kiosk/latest?after=" + url.QueryEscape(before.Latest))
			if err != nil {
				news <- err.Error()
				return
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			news <- string(b)
		}()
		_, page := w.get(t, path)
		w.post(t, path, url.Values{"key": {sendKey.FindStringSubmatch(page)[1]}, "text": {"¿Cómo estás, mijo? 💛"}})
		if got := <-news; got == latest || !strings.Contains(got, `"latest"`) {
			t.Errorf("the waiting kiosk check did not bring the news: %s (before: %s)", got, latest)
		}
		_, home := kiosk.get(t, "/kiosk")
		link := regexp.MustCompile(`href="(/kiosk/messages/[0-9a-f]+)(?:#latest)?"`).FindStringSubmatch(home)
		if link == nil || !strings.Contains(home, "1 new") || !strings.Contains(home, "Ana García") {
			t.Fatalf("kiosk home:\n%s", home)
		}
		// The page's own background refresh shows the message but does not mark it
		// read (nobody may be there).
		bg := kiosk.Do(t, "GET", link[1], nil, "X-Kiosk-Background", "1")
		if body := readBody(t, bg); !strings.Contains(body, "¿Cómo estás, mijo? 💛") {
			t.Fatalf("background refresh: %d", bg.StatusCode)
		}
		if _, page := w.get(t, path); strings.Contains(page, ">Read<") {
			t.Errorf("a background refresh marked the message read")
		}
		_, thread := kiosk.get(t, link[1])
		if !strings.Contains(thread, "¿Cómo estás, mijo? 💛") {
			t.Fatalf("the thread does not show the message:\n%s", thread)
		}
		if _, page := w.get(t, path); !strings.Contains(page, ">Read<") {
			t.Errorf("the family does not see the message was read")
		}
		key := sendKey.FindStringSubmatch(thread)[1]
		if res, page := kiosk.post(t, link[1], url.Values{"key": {key}, "text": {strings.Repeat("a", 7000)}}); res.StatusCode != 400 || !strings.Contains(page, "too long") {
			t.Errorf("a too-long reply: %d", res.StatusCode)
		}
		for range 2 { // a double tap sends once
			if res, _ := kiosk.post(t, link[1], url.Values{"key": {key}, "text": {"Bien, mamá. Gracias."}}); res.StatusCode != http.StatusSeeOther {
				t.Fatalf("reply: %d", res.StatusCode)
			}
		}
		// The reply is sent until the family sees it, then read.
		if _, thread := kiosk.get(t, link[1]); !strings.Contains(thread, `state-sent">Sent<`) {
			t.Errorf("the resident does not see the reply as sent:\n%s", thread)
		}
		_, login := w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": "ana@example.org", "password": password})
		bearer := []string{"Authorization", "Bearer " + login["token"].(string)}
		_, msgs := w.JSON(t, "GET", "/api/v1/contacts/"+contact+"/messages", nil, bearer...)
		all := msgs["messages"].([]any)
		if reply := all[len(all)-1].(map[string]any); reply["direction"] != "from_resident" || reply["state"] != "sent" {
			t.Errorf("the reply by API before the family opened it: %v", reply)
		}
		// The list of people shows it waiting, until the family opens it.
		if _, people := w.get(t, "/people"); !strings.Contains(people, "1 new reply") {
			t.Errorf("the list of people does not show the new reply:\n%s", people)
		}
		_, page = w.get(t, path)
		if strings.Count(page, "Bien, mamá. Gracias.") != 1 || !strings.Contains(page, "New reply") {
			t.Errorf("the family does not see the new reply once:\n%s", page)
		}
		if _, page = w.get(t, path); strings.Contains(page, "New reply") {
			t.Errorf("the reply is still new after the family saw it")
		}
		if _, people := w.get(t, "/people"); strings.Contains(people, "new repl") {
			t.Errorf("the list of people still shows the reply as new")
		}
		if _, thread := kiosk.get(t, link[1]); !strings.Contains(thread, "Read by your contact") {
			t.Errorf("the resident does not see the reply was read:\n%s", thread)
		}
		_, msgs = w.JSON(t, "GET", "/api/v1/contacts/"+contact+"/messages", nil, bearer...)
		all = msgs["messages"].([]any)
		if reply := all[len(all)-1].(map[string]any); reply["state"] != "read" {
			t.Errorf("the reply by API after the family opened it: %v", reply)
		}
		if m := w.lastMailTo(t, "ana@example.org", 3); !strings.Contains(m.Text, "José García") {
			t.Errorf("reply mail:\n%s", m.Text)
		}

		// Another family's contact id is not reachable from José's kiosk, and a signed-out
		// kiosk shows nothing.
		if res, _ := kiosk.get(t, "/kiosk/messages/0123456789abcdef0123456789abcdef"); res.StatusCode != 404 {
			t.Errorf("an unknown conversation: %d", res.StatusCode)
		}
		kiosk.post(t, "/kiosk/logout", nil)
		if res, page := kiosk.get(t, link[1]); strings.Contains(page, "Bien, mamá") || res.StatusCode != http.StatusSeeOther {
			t.Errorf("after logout the thread is shown: %d", res.StatusCode)
		}
		if res, _ := kiosk.get(t, "/kiosk/latest"); res.StatusCode != 401 {
			t.Errorf("latest after logout: %d", res.StatusCode)
		}
	})
}

// sendWithPhotos posts the conversation form as the browser does, with files.
func (w *world) sendWithPhotos(t *testing.T, path, text string, photos ...[]byte) (*http.Response, string) {
	t.Helper()
	_, page := w.get(t, path)
	return w.sendForm(t, path, sendKey.FindStringSubmatch(page)[1], text, photos...)
}

// sendForm posts a conversation form that carries key.
func (w *world) sendForm(t *testing.T, path, key, text string, photos ...[]byte) (*http.Response, string) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("key", key)
	mw.WriteField("text", text)
	for i, p := range photos {
		part, _ := mw.CreateFormFile("photos", fmt.Sprintf("IMG_%d.jpg", i+1))
		part.Write(p)
	}
	mw.Close()
	res := w.Do(t, "POST", path, &body, "Content-Type", mw.FormDataContentType(), "Sec-Fetch-Site", "same-origin")
	return res, readBody(t, res)
}

var photoSrc = regexp.MustCompile(`src="(/photos/[0-9a-f]+)"`)

func TestPhotosAreReviewedAndSeenOnlyByThoseConcerned(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		contact, fsp := approvedContact(t, w, "ana@example.org")
		path := "/people/" + contact + "/messages"
		w.topUp(t, "5")

		res, page := w.sendWithPhotos(t, path, "Mira a tu sobrina", []byte("not a picture"))
		if res.StatusCode != http.StatusUnsupportedMediaType || !strings.Contains(page, "Photo 1 (IMG_1.jpg) is not a JPEG, PNG or WebP picture") ||
			!strings.Contains(page, "Mira a tu sobrina") {
			t.Fatalf("a renamed non-image: %d", res.StatusCode)
		}
		six := make([][]byte, 6)
		for i := range six {
			six[i] = mediatest.JPEG(8, 8)
		}
		if res, page := w.sendWithPhotos(t, path, "seis", six...); res.StatusCode != 400 || !strings.Contains(page, "at most 5 photos") {
			t.Errorf("six photos: %d", res.StatusCode)
		}
		if res, _ := w.sendWithPhotos(t, path, "Mira a tu sobrina", mediatest.PhoneJPEG(300, 200), mediatest.JPEG(50, 50)); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("send with photos: %d", res.StatusCode)
		}
		_, page = w.get(t, path)
		srcs := photoSrc.FindAllStringSubmatch(page, -1)
		if len(srcs) != 2 || !strings.Contains(page, "Waiting for review") || !strings.Contains(page, "3 stamps") {
			t.Fatalf("the family's view of a message with photos:\n%s", page)
		}
		photo := srcs[0][1]
		if res, jpg := w.get(t, photo); res.StatusCode != 200 || res.Header.Get("Content-Type") != "image/jpeg" || strings.Contains(jpg, "Canon EOS") {
			t.Errorf("the family's photo: %d", res.StatusCode)
		}

		// The resident does not see it before review; another family never does.
		kiosk := residentAtKiosk(t, w, fsp)
		if res, _ := kiosk.get(t, photo); res.StatusCode != 404 {
			t.Errorf("the resident saw a photo before review: %d", res.StatusCode)
		}
		other := w.browser(t)
		other.signUp(t, "other@example.org")
		if res, _ := other.get(t, photo); res.StatusCode != 404 {
			t.Errorf("another family saw the photo: %d", res.StatusCode)
		}

		// The reviewer sees the photos, approves; then the resident sees them.
		_, queue := fsp.get(t, "/facility/review")
		id := regexp.MustCompile(`href="/facility/review/([0-9a-f]+)"`).FindStringSubmatch(queue)[1]
		_, item := fsp.get(t, "/facility/review/"+id)
		if !strings.Contains(item, photo) {
			t.Fatalf("the reviewer does not see the photos:\n%s", item)
		}
		// Both say how many photos there are, and each photo is told apart.
		if !strings.Contains(queue, "photos: 2") || !strings.Contains(item, "photos: 2") || !strings.Contains(item, `alt="Photo 2 of 2"`) {
			t.Errorf("the photo count in the queue or the item:\n%s\n%s", queue, item)
		}
		if res, _ := fsp.get(t, photo); res.StatusCode != 200 {
			t.Errorf("the reviewer's photo: %d", res.StatusCode)
		}
		fsp.post(t, "/facility/review/"+id, url.Values{"decision": {"approve"}})
		_, home := kiosk.get(t, "/kiosk")
		thread := regexp.MustCompile(`href="(/kiosk/messages/[0-9a-f]+)(?:#latest)?"`).FindStringSubmatch(home)[1]
		if _, page := kiosk.get(t, thread); !strings.Contains(page, photo) {
			t.Errorf("the kiosk thread does not show the photo")
		}
		if res, _ := kiosk.get(t, photo); res.StatusCode != 200 || res.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("the resident's photo: %d %q", res.StatusCode, res.Header.Get("Cache-Control"))
		}
		if out := w.operator(t, "ledger", "verify"); !strings.Contains(out, "ledger verified") {
			t.Errorf("ledger: %s", out)
		}
	})
}

// Where the agency prices replies, a resident replies with a reply the family
// prepaid, once per prepaid reply, and is told clearly when there is none.
func TestPricedRepliesUseAPrepaidReply(t *testing.T) {
	w := start(t, dbtest.Engines(t)[0].Setting)
	contact, fsp := approvedContact(t, w, "ana@example.org")
	path := "/people/" + contact + "/messages"
	w.topUp(t, "5")
	adminSecret := w.enrolStaff(t, "agency.admin@example.org", "staff pass 44!", "--role", "agency_admin")
	admin := w.browser(t)
	admin.portalLogin(t, "agency.admin@example.org", "staff pass 44!", adminSecret)
	if res, page := admin.post(t, "/facility/review/settings", url.Values{"reply_price_stamps": {"9"}, "watch": {"fuga"}}); res.StatusCode != 400 ||
		!strings.Contains(page, "from 0 to 5") || !strings.Contains(page, "fuga") {
		t.Fatalf("a reply price of 9: %d", res.StatusCode)
	}
	if res, _ := admin.post(t, "/facility/review/settings", url.Values{"reply_price_stamps": {"2"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("a reply price of 2: %d", res.StatusCode)
	}
	_, page := w.get(t, path)
	if !strings.Contains(page, "another 2 stamps") {
		t.Fatalf("the form does not offer a prepaid reply:\n%s", page)
	}
	w.post(t, path, url.Values{"key": {sendKey.FindStringSubmatch(page)[1]}, "text": {"Sin respuesta pagada"}})
	kiosk := residentAtKiosk(t, w, fsp)
	_, home := kiosk.get(t, "/kiosk")
	thread := regexp.MustCompile(`href="(/kiosk/messages/[0-9a-f]+)(?:#latest)?"`).FindStringSubmatch(home)[1]
	_, tp := kiosk.get(t, thread)
	if !strings.Contains(tp, "has not paid for one yet") {
		t.Errorf("the kiosk does not say that replies cost and none is paid:\n%s", tp)
	}
	if res, page := kiosk.post(t, thread, url.Values{"key": {sendKey.FindStringSubmatch(tp)[1]}, "text": {"Gracias"}}); res.StatusCode != 400 ||
		!strings.Contains(page, "has not paid for one") || !strings.Contains(page, "Gracias") {
		t.Fatalf("a reply without a prepaid one: %d", res.StatusCode)
	}
	_, page = w.get(t, path)
	w.post(t, path, url.Values{"key": {sendKey.FindStringSubmatch(page)[1]}, "text": {"Con respuesta pagada"}, "prepaid_reply": {"on"}})
	if _, page := w.get(t, path); !strings.Contains(page, "3 stamps") {
		t.Errorf("a message with a prepaid reply does not cost 3 stamps:\n%s", page)
	}
	if _, tp := kiosk.get(t, thread); !strings.Contains(tp, "Your reply is paid for") {
		t.Errorf("the kiosk does not say the reply is paid for:\n%s", tp)
	}
	for i, want := range []int{http.StatusSeeOther, http.StatusBadRequest} {
		_, tp := kiosk.get(t, thread)
		if res, _ := kiosk.post(t, thread, url.Values{"key": {sendKey.FindStringSubmatch(tp)[1]}, "text": {fmt.Sprint("Respuesta ", i)}}); res.StatusCode != want {
			t.Errorf("reply %d: %d, want %d", i, res.StatusCode, want)
		}
	}
}

// A message waiting in review for a resident who is released meanwhile is not
// delivered: approval is refused, and rejecting it refunds the family.
func TestReleasedResidentGetsNoReviewedMessage(t *testing.T) {
	// Released while the photo waited, or restricted from photos since.
	for _, change := range []string{"A100,García,José,FSP,B-12,released,", "A100,García,José,FSP,B-12,active,no_photos"} {
		w := start(t, dbtest.Engines(t)[0].Setting)
		contact, fsp := approvedContact(t, w, "ana@example.org")
		path := "/people/" + contact + "/messages"
		w.topUp(t, "5")
		if res, _ := w.sendWithPhotos(t, path, "Una foto", mediatest.JPEG(40, 30)); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("send: %d", res.StatusCode)
		}
		w.importRoster(t, strings.Replace(roster, "A100,García,José,FSP,B-12,active,", change, 1))
		_, queue := fsp.get(t, "/facility/review")
		id := regexp.MustCompile(`href="/facility/review/([0-9a-f]+)"`).FindStringSubmatch(queue)[1]
		if res, page := fsp.post(t, "/facility/review/"+id, url.Values{"decision": {"approve"}}); res.StatusCode != http.StatusConflict || !strings.Contains(page, "can no longer be delivered") {
			t.Errorf("%s: approve: %d", change, res.StatusCode)
		}
		if res, _ := fsp.post(t, "/facility/review/"+id, url.Values{"decision": {"reject"}, "reason": {"other"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("reject: %d", res.StatusCode)
		}
		if _, wallet := w.get(t, "/wallet"); !strings.Contains(wallet, `id="balance">$5.00<`) {
			t.Errorf("%s: the family was not refunded:\n%s", change, wallet)
		}
	}
}

// Messages waiting in review follow a transferred resident to the new facility's
// reviewers.
func TestReviewFollowsATransfer(t *testing.T) {
	w := start(t, dbtest.Engines(t)[0].Setting)
	contact, fsp := approvedContact(t, w, "ana@example.org")
	w.topUp(t, "5")
	if res, _ := w.sendWithPhotos(t, "/people/"+contact+"/messages", "Una foto", mediatest.JPEG(40, 30)); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("send: %d", res.StatusCode)
	}
	w.importRoster(t, strings.Replace(roster, "A100,García,José,FSP", "A100,García,José,LCI", 1))
	secret := w.enrolStaff(t, "lci.mail@example.org", "staff pass 45!", "--role", "mail_reviewer", "--facility", "LCI")
	lci := w.browser(t)
	lci.portalLogin(t, "lci.mail@example.org", "staff pass 45!", secret)
	if _, queue := lci.get(t, "/facility/review"); !strings.Contains(queue, "José García") {
		t.Errorf("the new facility's reviewer does not see the waiting message")
	}
	if _, queue := fsp.get(t, "/facility/review"); strings.Contains(queue, "José García") {
		t.Errorf("the old facility still reviews a transferred resident's mail")
	}
}

// Letters of other scripts that look like Latin ones do not slip a message past the
// watch list: "las drоgas" with a Cyrillic о goes to review like "las drogas", and
// the family and the resident read the text as it was written.
func TestLookAlikeLettersDoNotSlipPastTheWatchList(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		contact, _ := approvedContact(t, w, "ana@example.org")
		path := "/people/" + contact + "/messages"
		w.topUp(t, "10")
		adminSecret := w.enrolStaff(t, "agency.admin@example.org", "staff pass 44!", "--role", "agency_admin")
		admin := w.browser(t)
		admin.portalLogin(t, "agency.admin@example.org", "staff pass 44!", adminSecret)
		if res, _ := admin.post(t, "/facility/review/settings", url.Values{"watch": {"drogas"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("save watch list: %d", res.StatusCode)
		}
		send := func(text string) {
			t.Helper()
			_, page := w.get(t, path)
			if res, _ := w.post(t, path, url.Values{"key": {sendKey.FindStringSubmatch(page)[1]}, "text": {text}}); res.StatusCode != http.StatusSeeOther {
				t.Fatalf("send %q: %d", text, res.StatusCode)
			}
		}
		send("Turn left at the modern corner.")                                  // no look-alike of anything: delivered
		send("las dr\u043egas")                                                  // Cyrillic о
		send("las dr\u03bfgas")                                                  // Greek ο
		send("las dr\u0585gas")                                                  // Armenian օ
		send("las \U0001d41d\U0001d42b\U0001d428\U0001d420\U0001d41a\U0001d42c") // mathematical bold
		_, page := w.get(t, path)
		if strings.Count(page, "Waiting for review") != 4 || strings.Count(page, "Delivered") != 1 {
			t.Fatalf("states after sending:\n%s", page)
		}
		if !strings.Contains(page, "las dr\u043egas") {
			t.Errorf("the text is not kept as written:\n%s", page)
		}
	})
}

func TestAgencyWordsItsOwnRejectReasons(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		contact, fsp := approvedContact(t, w, "ana@example.org")
		path := "/people/" + contact + "/messages"
		w.topUp(t, "5")
		adminSecret := w.enrolStaff(t, "agency.admin@example.org", "staff pass 44!", "--role", "agency_admin")
		admin := w.browser(t)
		admin.portalLogin(t, "agency.admin@example.org", "staff pass 44!", adminSecret)
		admin.post(t, "/facility/review/settings", url.Values{"watch": {"gun"}})

		// The wording is checked, and what was typed stays.
		if res, page := admin.post(t, "/facility/review/reasons", url.Values{"reason_english": {"  "}, "reason_spanish": {"Sobre pandillas"}}); res.StatusCode != 400 ||
			!strings.Contains(page, "Write the reason in plain text") || !strings.Contains(page, `value="Sobre pandillas"`) {
			t.Fatalf("a reason without English: %d", res.StatusCode)
		}
		if res, _ := admin.post(t, "/facility/review/reasons", url.Values{"reason_english": {"About gang  activity"}, "reason_spanish": {"Sobre actividad de pandillas"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("add a reason: %d", res.StatusCode)
		}
		if res, page := admin.post(t, "/facility/review/reasons", url.Values{"reason_english": {"ABOUT GANG ACTIVITY"}}); res.StatusCode != http.StatusConflict ||
			!strings.Contains(page, "already has this reason") {
			t.Errorf("the same reason twice: %d", res.StatusCode)
		}
		if res, page := admin.post(t, "/facility/review/reasons", url.Values{"reason_english": {"about CONTRABAND "}}); res.StatusCode != http.StatusConflict ||
			!strings.Contains(page, "already has this reason") {
			t.Errorf("a reason worded as a built-in one: %d", res.StatusCode)
		}
		if res, _ := fsp.post(t, "/facility/review/reasons", url.Values{"reason_english": {"Facility admins are not agency admins"}}); res.StatusCode != http.StatusForbidden {
			t.Errorf("a facility admin added a reason: %d", res.StatusCode)
		}
		_, page := admin.get(t, "/facility/review")
		gang := regexp.MustCompile(`action="/facility/review/reasons/([0-9a-f]{32})"`).FindStringSubmatch(page)
		if gang == nil || !strings.Contains(page, "About gang activity") || !strings.Contains(page, "Sobre actividad de pandillas") {
			t.Fatalf("the reason list:\n%s", page)
		}
		// Retire every built-in reason; the agency's own is then the last, and stays.
		for _, code := range []string{"threat", "contraband", "explicit", "escape_or_crime", "coded_language", "other"} {
			if res, _ := admin.post(t, "/facility/review/reasons/"+code, url.Values{"action": {"retire"}}); res.StatusCode != http.StatusSeeOther {
				t.Fatalf("retire %s: %d", code, res.StatusCode)
			}
		}
		if res, page := admin.post(t, "/facility/review/reasons/"+gang[1], url.Values{"action": {"retire"}}); res.StatusCode != http.StatusConflict ||
			!strings.Contains(page, "at least one reason") {
			t.Errorf("retire the last reason: %d", res.StatusCode)
		}
		if res, _ := admin.post(t, "/facility/review/reasons/"+strings.Repeat("0", 32), url.Values{"action": {"retire"}}); res.StatusCode != http.StatusNotFound {
			t.Errorf("retire a reason that does not exist: %d", res.StatusCode)
		}
		if res, _ := admin.post(t, "/facility/review/reasons/other", url.Values{"action": {"restore"}}); res.StatusCode != http.StatusSeeOther {
			t.Errorf("restore a reason: %d", res.StatusCode)
		}

		_, page = w.get(t, path)
		if res, _ := w.post(t, path, url.Values{"key": {sendKey.FindStringSubmatch(page)[1]}, "text": {"Is the gun still there?"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("send: %d", res.StatusCode)
		}
		_, queue := fsp.get(t, "/facility/review")
		id := regexp.MustCompile(`href="/facility/review/([0-9a-f]+)"`).FindStringSubmatch(queue)[1]
		_, item := fsp.get(t, "/facility/review/"+id)
		if !strings.Contains(item, "About gang activity") || !strings.Contains(item, "Against the facility") || strings.Contains(item, "A threat to someone") {
			t.Errorf("the reviewer's reasons:\n%s", item)
		}
		if res, page := fsp.post(t, "/facility/review/"+id, url.Values{"decision": {"reject"}, "reason": {"threat"}}); res.StatusCode != 400 || !strings.Contains(page, "no longer on the list") {
			t.Errorf("reject with a retired reason: %d", res.StatusCode)
		}
		if res, page := fsp.post(t, "/facility/review/"+id, url.Values{"decision": {"maybe"}, "reason": {gang[1]}}); res.StatusCode != 400 || !strings.Contains(page, "Choose Approve or Reject") {
			t.Errorf("a decision that is neither: %d", res.StatusCode)
		}
		if res, _ := fsp.post(t, "/facility/review/"+id, url.Values{"decision": {"reject"}, "reason": {gang[1]}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("reject with the agency's reason: %d", res.StatusCode)
		}
		// Retiring the reason later does not change what the family reads.
		admin.post(t, "/facility/review/reasons/"+gang[1], url.Values{"action": {"retire"}})

		if _, page := w.get(t, path); !strings.Contains(page, "About gang activity") {
			t.Errorf("the family's view:\n%s", page)
		}
		if m := w.lastMailTo(t, "ana@example.org", 3); !strings.Contains(m.Text, "Reason: About gang activity") {
			t.Errorf("rejection mail:\n%s", m.Text)
		}
		w.get(t, "/lang?to=es&next=/")
		if _, page := w.get(t, path); !strings.Contains(page, "Sobre actividad de pandillas") {
			t.Errorf("the family's view in Spanish:\n%s", page)
		}
		_, login := w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": "ana@example.org", "password": password})
		_, msgs := w.JSON(t, "GET", "/api/v1/contacts/"+contact+"/messages", nil, "Authorization", "Bearer "+login["token"].(string))
		m := msgs["messages"].([]any)[0].(map[string]any)
		if m["state"] != "rejected" || m["reason"] != gang[1] || m["reason_text"] != "About gang activity" {
			t.Errorf("the API's message: %v", m)
		}
		_, audit := admin.get(t, "/facility/audit")
		if !strings.Contains(audit, "review.reason_added") || !strings.Contains(audit, "review.reason_retired") {
			t.Errorf("the audit log does not show the reason changes")
		}
	})
}

// A server keeps watch lists in memory; a change made through another server on the
// same database still applies to the very next message it takes.
func TestWatchListChangeReachesEveryServer(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		contact, _ := approvedContact(t, w, "ana@example.org")
		path := "/people/" + contact + "/messages"
		w.topUp(t, "5")
		env := maps.Clone(w.Env)
		env["KINLINK_ADDR"] = "127.0.0.1:0"
		other := apptest.Start(t, "serve", env["KINLINK_DATABASE"], env)
		other.Client = w.Client // the same family, signed in, on the second server
		b := &world{Instance: other, smtp: w.smtp}
		send := func(on *world, text string) {
			t.Helper()
			_, page := on.get(t, path)
			if res, _ := on.post(t, path, url.Values{"key": {sendKey.FindStringSubmatch(page)[1]}, "text": {text}}); res.StatusCode != http.StatusSeeOther {
				t.Fatalf("send %q: %d", text, res.StatusCode)
			}
		}
		send(b, "Is the gun still in the attic?") // no watch list yet: delivered
		adminSecret := w.enrolStaff(t, "agency.admin@example.org", "staff pass 44!", "--role", "agency_admin")
		admin := w.browser(t)
		admin.portalLogin(t, "agency.admin@example.org", "staff pass 44!", adminSecret)
		if res, _ := admin.post(t, "/facility/review/settings", url.Values{"watch": {"gun"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("save watch list: %d", res.StatusCode)
		}
		send(b, "Bring the gun tonight.")
		if _, page := w.get(t, path); strings.Count(page, "Waiting for review") != 1 || strings.Count(page, "Delivered") != 1 {
			t.Errorf("the second server did not apply the new watch list:\n%s", page)
		}
	})
}

// When the photo store fails, the family gets the page back with what they typed, a
// message that says to try again and the same form key; once the store is back,
// sending that form again sends one message, charged once.
func TestAFailedSendKeepsTheDraft(t *testing.T) {
	s3, bucket := mediatest.S3(t)
	w := startWith(t, dbtest.Engines(t)[0].Setting, mediatest.Settings(s3))
	contact, _ := approvedContact(t, w, "ana@example.org")
	path := "/people/" + contact + "/messages"
	w.topUp(t, "5")
	_, page := w.get(t, path)
	key := sendKey.FindStringSubmatch(page)[1]
	if err := bucket.DeleteBucket(s3.Bucket); err != nil { // the store is gone
		t.Fatal(err)
	}
	res, page := w.sendForm(t, path, key, "Feliz cumpleaños, mijo", mediatest.JPEG(200, 100))
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(page, "could not be sent just now") ||
		!strings.Contains(page, "choose the photos again") || !strings.Contains(page, "Feliz cumpleaños, mijo") {
		t.Fatalf("a send the store refused: %d\n%s", res.StatusCode, page)
	}
	if got := sendKey.FindStringSubmatch(page)[1]; got != key {
		t.Errorf("the form came back with key %s, not the one it was sent with", got)
	}
	if !strings.Contains(page, "$5.00") {
		t.Errorf("the failed send changed the balance:\n%s", page)
	}
	bucket.CreateBucket(s3.Bucket)
	for range 2 { // the family presses Send again, then once more
		if res, _ := w.sendForm(t, path, key, "Feliz cumpleaños, mijo", mediatest.JPEG(200, 100)); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("sending again: %d", res.StatusCode)
		}
	}
	if _, page := w.get(t, path); strings.Count(page, "Feliz cumpleaños, mijo") != 1 || !strings.Contains(page, "$4.80") {
		t.Errorf("after sending again: the message should show once, charged once (2 stamps):\n%s", page)
	}
}
