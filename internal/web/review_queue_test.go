package web_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/media/mediatest"
)

// The review queue and the opened message (issue 13, item 11): what a reviewer reads
// at a glance, the watch list's words marked, the conversation around a message, and
// going from one message to the next.

var queueIDs = regexp.MustCompile(`href="/facility/review/([0-9a-f]+)"`)

// say sends text from the family's conversation page; the message is stored.
func (w *world) say(t *testing.T, path, text string) {
	t.Helper()
	_, page := w.get(t, path)
	if res, _ := w.post(t, path, url.Values{"key": {sendKey.FindStringSubmatch(page)[1]}, "text": {text}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("send %q: %d", text, res.StatusCode)
	}
}

// reviewWorld is FLDOC with José at FSP, Ana García writing to him with money in
// her wallet, FSP's admin (a reviewer there) signed in, and an agency admin who
// set the watch list and reads the audit log.
func reviewWorld(t *testing.T, w *world, watch string) (path string, fsp, admin *world) {
	t.Helper()
	contact, fsp := approvedContact(t, w, "ana@example.org")
	w.topUp(t, "10")
	secret := w.enrolStaff(t, "agency.admin@example.org", "staff pass 44!", "--role", "agency_admin")
	admin = w.browser(t)
	admin.portalLogin(t, "agency.admin@example.org", "staff pass 44!", secret)
	if res, _ := admin.post(t, "/facility/review/settings", url.Values{"watch": {watch}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("save watch list: %d", res.StatusCode)
	}
	return "/people/" + contact + "/messages", fsp, admin
}

// auditReads is the agency's audit log of message reads, as an investigator reads it.
func auditReads(t *testing.T, admin *world) string {
	t.Helper()
	res, page := admin.get(t, "/facility/audit?action=message.read")
	if res.StatusCode != 200 {
		t.Fatalf("audit search: %d", res.StatusCode)
	}
	return page
}

// The queue shows how each message starts, escaped, with the watch list's words
// marked and named, and small pictures of its photos; each preview and each photo
// opened is an audited read, and only the facility's reviewers get them.
func TestReviewQueuePreviewsTextAndPhotos(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		path, fsp, admin := reviewWorld(t, w, "gun\ndrogas")
		w.say(t, path, `<script>alert(1)</script> bring the gun <img src=x onerror=alert(2)>`)
		w.say(t, path, "Las drogas de la clínica.\n"+strings.Repeat("Una línea más de noticias de la casa. ", 12)+"FINAL")
		if res, _ := w.sendWithPhotos(t, path, "Mira a tu sobrina", mediatest.JPEG(60, 40), mediatest.JPEG(40, 60)); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("send with photos: %d", res.StatusCode)
		}

		res, queue := fsp.get(t, "/facility/review")
		ids := queueIDs.FindAllStringSubmatch(queue, -1)
		if res.StatusCode != 200 || len(ids) != 3 {
			t.Fatalf("the queue: %d\n%s", res.StatusCode, queue)
		}
		// The words a family wrote are text, never markup, around the mark too.
		if strings.Contains(queue, "<script>alert") || strings.Contains(queue, "<img src=x") ||
			!strings.Contains(queue, `&lt;script&gt;alert(1)&lt;/script&gt; bring the <mark>gun</mark> &lt;img src=x onerror=alert(2)&gt;`) {
			t.Errorf("the preview of a message with markup in it:\n%s", queue)
		}
		// The words found are named as text, not only shown in colour.
		if !strings.Contains(queue, `Watch list: <bdi>“gun”</bdi>`) || !strings.Contains(queue, `Watch list: <bdi>“drogas”</bdi>`) {
			t.Errorf("the queue does not name the words found:\n%s", queue)
		}
		// A long message shows its start only, and says so.
		if !strings.Contains(queue, "Las <mark>drogas</mark> de la clínica.\nUna línea más") || strings.Contains(queue, "FINAL") ||
			!strings.Contains(queue, "open it to read it all") {
			t.Errorf("the preview of a long message:\n%s", queue)
		}
		if !strings.Contains(queue, "From <bdi>Ana García</bdi>") {
			t.Errorf("the family's name is not isolated:\n%s", queue)
		}
		thumbs := regexp.MustCompile(`<img src="(/photos/[0-9a-f]+)" width="\d+" height="\d+" loading="lazy" alt="Photo (\d) of 2">`).FindAllStringSubmatch(queue, -1)
		if len(thumbs) != 2 || !strings.Contains(queue, "Mira a tu sobrina") {
			t.Fatalf("the queue's photos: %v\n%s", thumbs, queue)
		}
		photo := thumbs[0][1]

		// Three previews were three reads of messages, in the log as opening them is;
		// the reviewer refreshing the queue is the same viewing, not three more.
		fsp.get(t, "/facility/review")
		if reads := auditReads(t, admin); strings.Count(reads, "preview in the queue") != 3 {
			t.Errorf("the previews are not in the audit log as reads (%d):\n%s", strings.Count(reads, "preview in the queue"), reads)
		}
		// The picture is the photo route's, for a reviewer of the facility, audited.
		if res, jpg := fsp.get(t, photo); res.StatusCode != 200 || res.Header.Get("Content-Type") != "image/jpeg" || len(jpg) == 0 {
			t.Errorf("the reviewer's thumbnail: %d", res.StatusCode)
		}
		if reads := auditReads(t, admin); !strings.Contains(reads, ">photo<") {
			t.Errorf("the photo opened is not in the audit log:\n%s", reads)
		}

		// Another facility's reviewer and an investigator see no preview and no photo.
		lciSecret := w.enrolStaff(t, "lci.mail@example.org", "staff pass 45!", "--role", "mail_reviewer", "--facility", "LCI")
		lci := w.browser(t)
		lci.portalLogin(t, "lci.mail@example.org", "staff pass 45!", lciSecret)
		if _, page := lci.get(t, "/facility/review"); strings.Contains(page, "bring the") || strings.Contains(page, "/photos/") {
			t.Errorf("an LCI reviewer sees FSP's previews:\n%s", page)
		}
		invSecret := w.enrolStaff(t, "investigator@example.org", "staff pass 46!", "--role", "investigator")
		inv := w.browser(t)
		inv.portalLogin(t, "investigator@example.org", "staff pass 46!", invSecret)
		for who, staff := range map[string]*world{"an LCI reviewer": lci, "an investigator": inv} {
			if res, _ := staff.get(t, photo); res.StatusCode != 404 {
				t.Errorf("%s opened a photo waiting at FSP: %d", who, res.StatusCode)
			}
		}
		if res, page := inv.get(t, "/facility/review"); res.StatusCode != http.StatusForbidden || strings.Contains(page, "bring the") {
			t.Errorf("an investigator's queue: %d", res.StatusCode)
		}
	})
}

// The queue previews its oldest messages only: each preview is an audited read, and
// a queue of hundreds is not read all at once.
func TestReviewQueuePreviewsTheOldestOnly(t *testing.T) {
	w := start(t, dbtest.Engines(t)[0].Setting)
	path, fsp, admin := reviewWorld(t, w, "gun")
	for i := range 21 {
		w.say(t, path, fmt.Sprintf("gun number %d", i+1))
	}
	_, queue := fsp.get(t, "/facility/review")
	if n := len(queueIDs.FindAllString(queue, -1)); n != 21 {
		t.Fatalf("%d messages in the queue", n)
	}
	if !strings.Contains(queue, "<mark>gun</mark> number 20</p>") || strings.Contains(queue, "number 21") ||
		!strings.Contains(queue, `id="preview-limit">The 20 oldest messages show how they begin`) {
		t.Errorf("the queue previews other than its 20 oldest:\n%s", queue)
	}
	if n := strings.Count(auditReads(t, admin), "preview in the queue"); n != 20 {
		t.Errorf("%d previews recorded, want 20", n)
	}
}

// An opened message marks every watch-list word in the text as written (accents,
// look-alike letters, a phrase over two words), names them, escapes everything,
// and shows the conversation's last messages before it, both ways, read-only and
// within the same audited read.
func TestOpenedMessageMarksWordsAndShowsTheConversation(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		path, fsp, admin := reviewWorld(t, w, "tres leches\ndrogas")
		for _, n := range []string{"uno", "dos", "tres", "cuatro", "cinco", "seis"} {
			w.say(t, path, "Mensaje "+n)
		}
		kiosk := residentAtKiosk(t, w, fsp)
		_, home := kiosk.get(t, "/kiosk")
		thread := regexp.MustCompile(`href="(/kiosk/messages/[0-9a-f]+)(?:#latest)?"`).FindStringSubmatch(home)[1]
		_, page := kiosk.get(t, thread)
		if res, _ := kiosk.post(t, thread, url.Values{"key": {sendKey.FindStringSubmatch(page)[1]}, "text": {"Gracias, mamá."}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("reply: %d", res.StatusCode)
		}
		w.say(t, path, "<b>Mamá</b> hizo TRES  LECHES\ny las DR\u041eGAS <script>alert(1)</script> llegaron.")

		_, queue := fsp.get(t, "/facility/review")
		id := queueIDs.FindStringSubmatch(queue)[1]
		res, item := fsp.get(t, "/facility/review/"+id)
		if res.StatusCode != 200 {
			t.Fatalf("open: %d", res.StatusCode)
		}
		want := `&lt;b&gt;Mamá&lt;/b&gt; hizo <mark>TRES  LECHES</mark>` + "\n" + `y las <mark>DR` + "\u041e" + `GAS</mark> &lt;script&gt;alert(1)&lt;/script&gt; llegaron.`
		if !strings.Contains(item, want) || strings.Contains(item, "<script>alert") {
			t.Errorf("the message's text, marked:\n%s", item)
		}
		if !strings.Contains(item, `marked in the text: <bdi>“tres leches”</bdi>, <bdi>“drogas”</bdi>`) {
			t.Errorf("the words found are not named:\n%s", item)
		}

		// The last five before it, oldest first, with who wrote them, when, and their
		// state: the resident's reply among them.
		earlier := regexp.MustCompile(`(?s)<ol class="thread" id="earlier">(.*?)</ol>`).FindStringSubmatch(item)
		if earlier == nil {
			t.Fatalf("no earlier messages:\n%s", item)
		}
		got := regexp.MustCompile(`<p class="text" dir="auto">([^<]*)</p>`).FindAllStringSubmatch(earlier[1], -1)
		var texts []string
		for _, g := range got {
			texts = append(texts, g[1])
		}
		if strings.Join(texts, "|") != "Mensaje tres|Mensaje cuatro|Mensaje cinco|Mensaje seis|Gracias, mamá." {
			t.Errorf("earlier messages: %q", texts)
		}
		if strings.Count(earlier[1], "<bdi>Ana García</bdi>") != 4 || strings.Count(earlier[1], "<bdi>José García</bdi>") != 1 ||
			strings.Count(earlier[1], `<time datetime="`) != 5 || strings.Count(earlier[1], `class="state-read">Read<`) != 5 {
			t.Errorf("who wrote the earlier messages, when, and their state:\n%s", earlier[1])
		}
		section := item[strings.Index(item, `<section aria-labelledby="earlier-title">`):]
		if section = section[:strings.Index(section, "</section>")]; strings.Contains(section, "<form") || strings.Contains(section, "<button") {
			t.Errorf("the earlier messages can be acted on:\n%s", section)
		}
		// One audited read, which says the conversation was shown with it.
		if reads := auditReads(t, admin); !strings.Contains(reads, "message:"+id) || !strings.Contains(reads, "with 5 earlier messages of the conversation") {
			t.Errorf("the read is not audited with its conversation:\n%s", reads)
		}

		// Another facility's reviewer reads none of it.
		lciSecret := w.enrolStaff(t, "lci.mail@example.org", "staff pass 45!", "--role", "mail_reviewer", "--facility", "LCI")
		lci := w.browser(t)
		lci.portalLogin(t, "lci.mail@example.org", "staff pass 45!", lciSecret)
		if res, page := lci.get(t, "/facility/review/"+id); res.StatusCode != 404 || strings.Contains(page, "Mensaje") {
			t.Errorf("an LCI reviewer opened it: %d", res.StatusCode)
		}
	})
}

// "Approve and next" and "Reject and next" decide, then open the next message of
// the queue, oldest first, or come back to the queue saying none is left; a second
// decision is still a conflict and a cross-site post is still refused.
func TestDecideAndOpenTheNext(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		path, fsp, _ := reviewWorld(t, w, "gun")
		for _, s := range []string{"first gun", "second gun", "third gun", "fourth gun"} {
			w.say(t, path, s)
		}
		_, queue := fsp.get(t, "/facility/review")
		ids := queueIDs.FindAllStringSubmatch(queue, -1)
		if len(ids) != 4 {
			t.Fatalf("the queue:\n%s", queue)
		}
		first, second, third, fourth := ids[0][1], ids[1][1], ids[2][1], ids[3][1]
		if a, b := strings.Index(queue, "first <mark>gun</mark>"), strings.Index(queue, "fourth <mark>gun</mark>"); a < 0 || b < a {
			t.Fatalf("the queue is not oldest first:\n%s", queue)
		}

		_, item := fsp.get(t, "/facility/review/"+first)
		if !strings.Contains(item, `id="approve-next" formaction="/facility/review/`+first+`?next=1"`) ||
			!strings.Contains(item, `id="reject-next" formaction="/facility/review/`+first+`?next=1"`) {
			t.Fatalf("no approve and next:\n%s", item)
		}
		res, _ := fsp.post(t, "/facility/review/"+first+"?next=1", url.Values{"decision": {"approve"}})
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/facility/review/"+second+"?done=approved" {
			t.Fatalf("approve and next: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		if _, page := fsp.get(t, res.Header.Get("Location")); !strings.Contains(page, "The message was delivered. This is the next one waiting.") ||
			!strings.Contains(page, "second <mark>gun</mark>") {
			t.Errorf("the next message:\n%s", page)
		}
		// A second decision is a conflict, with or without "next".
		if res, page := fsp.post(t, "/facility/review/"+first+"?next=1", url.Values{"decision": {"reject"}, "reason": {"threat"}}); res.StatusCode != http.StatusConflict ||
			!strings.Contains(page, "already decided") {
			t.Errorf("a second decision and next: %d", res.StatusCode)
		}
		// A post from another site decides nothing.
		cross := fsp.Do(t, "POST", "/facility/review/"+second+"?next=1", strings.NewReader("decision=approve"),
			"Content-Type", "application/x-www-form-urlencoded", "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example")
		if readBody(t, cross); cross.StatusCode != http.StatusForbidden {
			t.Errorf("a cross-site approve and next: %d", cross.StatusCode)
		}
		if _, page := fsp.get(t, "/facility/review/"+second); !strings.Contains(page, `id="message-state">Waiting for review<`) {
			t.Errorf("a cross-site post decided the message")
		}

		// Reject and next needs a reason, like reject; then goes on.
		if res, page := fsp.post(t, "/facility/review/"+second+"?next=1", url.Values{"decision": {"reject"}, "note": {"Sin armas."}}); res.StatusCode != 400 ||
			!strings.Contains(page, "Choose a reason") || !strings.Contains(page, "Sin armas.") {
			t.Errorf("reject and next without a reason: %d", res.StatusCode)
		}
		res, _ = fsp.post(t, "/facility/review/"+second+"?next=1", url.Values{"decision": {"reject"}, "reason": {"threat"}, "note": {"Sin armas."}})
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/facility/review/"+third+"?done=rejected" {
			t.Fatalf("reject and next: %d %s", res.StatusCode, res.Header.Get("Location"))
		}

		// Past the newest, the next is the oldest left behind; then none.
		res, _ = fsp.post(t, "/facility/review/"+fourth+"?next=1", url.Values{"decision": {"approve"}})
		if res.Header.Get("Location") != "/facility/review/"+third+"?done=approved" {
			t.Errorf("after the newest: %s", res.Header.Get("Location"))
		}
		res, _ = fsp.post(t, "/facility/review/"+third+"?next=1", url.Values{"decision": {"approve"}})
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/facility/review?done=approved_last" {
			t.Fatalf("the last one: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		if _, page := fsp.get(t, res.Header.Get("Location")); !strings.Contains(page, "No other message is waiting for you.") || !strings.Contains(page, `id="no-review"`) {
			t.Errorf("the empty queue after the last:\n%s", page)
		}
		// The plain buttons still go back to the queue.
		w.say(t, path, "fifth gun")
		_, queue = fsp.get(t, "/facility/review")
		if res, _ := fsp.post(t, "/facility/review/"+queueIDs.FindStringSubmatch(queue)[1], url.Values{"decision": {"approve"}}); res.Header.Get("Location") != "/facility/review?done=approved" {
			t.Errorf("approve: %s", res.Header.Get("Location"))
		}
	})
}

// "Next" never opens a message of a facility the reviewer does not review.
func TestNextStaysInTheReviewersFacilities(t *testing.T) {
	w := start(t, dbtest.Engines(t)[0].Setting)
	path, fsp, admin := reviewWorld(t, w, "gun")
	// John Smith is at LCI: Ana adds him too, and the agency admin approves.
	_, login := w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": "ana@example.org", "password": password})
	auth := []string{"Authorization", "Bearer " + login["token"].(string)}
	_, found := w.JSON(t, "GET", "/api/v1/residents?agency=FLDOC&resident_id=A101", nil, auth...)
	_, c := w.JSON(t, "POST", "/api/v1/contacts", map[string]any{"resident": found["residents"].([]any)[0].(map[string]any)["id"]}, auth...)
	if res, _ := admin.post(t, "/facility/contacts/"+c["id"].(string), url.Values{"decision": {"approve"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("approve the LCI contact: %d", res.StatusCode)
	}
	w.say(t, path, "first gun")
	w.say(t, "/people/"+c["id"].(string)+"/messages", "a gun at LCI")
	w.say(t, path, "second gun")
	_, queue := fsp.get(t, "/facility/review")
	ids := queueIDs.FindAllStringSubmatch(queue, -1)
	if len(ids) != 2 || strings.Contains(queue, "LCI") {
		t.Fatalf("FSP's queue:\n%s", queue)
	}
	res, _ := fsp.post(t, "/facility/review/"+ids[0][1]+"?next=1", url.Values{"decision": {"approve"}})
	if res.Header.Get("Location") != "/facility/review/"+ids[1][1]+"?done=approved" {
		t.Errorf("next from FSP: %s", res.Header.Get("Location"))
	}
	res, _ = fsp.post(t, "/facility/review/"+ids[1][1]+"?next=1", url.Values{"decision": {"approve"}})
	if res.Header.Get("Location") != "/facility/review?done=approved_last" {
		t.Errorf("FSP's last, with LCI's message still waiting: %s", res.Header.Get("Location"))
	}
}

// Enter in the note field submits the note's form with that form's first button
// (implicit submission): it must reject, never approve the message being rejected.
func TestEnterInTheNoteDoesNotApprove(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		path, fsp, _ := reviewWorld(t, w, "gun")
		w.say(t, path, "a gun")
		_, queue := fsp.get(t, "/facility/review")
		ids := queueIDs.FindAllStringSubmatch(queue, -1)
		if len(ids) != 1 {
			t.Fatalf("the queue:\n%s", queue)
		}
		_, item := fsp.get(t, "/facility/review/"+ids[0][1])
		note := strings.Index(item, `id="note"`)
		form := strings.LastIndex(item[:max(note, 0)], "<form")
		if note < 0 || form < 0 {
			t.Fatalf("no note in a form:\n%s", item)
		}
		first := item[form:]
		first = first[strings.Index(first, `<button type="submit"`):]
		first = first[:strings.Index(first, ">")]
		if !strings.Contains(first, `value="reject"`) {
			t.Errorf("Enter in the note would press %s", first)
		}
	})
}
