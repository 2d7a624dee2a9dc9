package e2e

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/kinlink/kinlink/internal/apptest"
	"github.com/kinlink/kinlink/internal/media/mediatest"
)

// On the demo data, the mail reviewer works through the review queue on a phone
// 360 px wide, in English and Spanish: the queue shows how each message starts with
// the watch list's words marked and a photo's thumbnail, the opened message shows
// the conversation before it, and "approve and next" goes from one message to the
// next until the queue is empty. Nothing scrolls sideways and every page passes
// axe-core.
func TestReviewQueueJourney(t *testing.T) {
	b := newBrowser(t)
	in := apptest.Start(t, "demo", "sqlite:"+filepath.Join(t.TempDir(), "kinlink.db"), nil)
	in.WaitStdout(t, "Stop with Ctrl+C")
	at := func(sel string) chromedp.Action[chromedp.Void] { return chromedp.WaitVisible(chromedp.CSS(sel)) }
	text := func(sel string) string {
		t.Helper()
		return eval[string](t, b, fmt.Sprintf(`(document.querySelector(%q) || {innerText: ""}).innerText`, sel))
	}
	marks := func(scope string) string {
		t.Helper()
		return eval[string](t, b, fmt.Sprintf(`[...document.querySelectorAll(%q)].map(m => m.innerText).join("|")`, scope+" mark"))
	}
	waitFor := func(what, expr string) {
		t.Helper()
		poll := `(() => { try { return !!(` + expr + `); } catch (_) { return false; } })()`
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](poll)); err == nil && ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: never true: %s", what, expr)
			}
		}
	}
	// fits checks the page at the phone's width: no sideways scrolling, axe-clean.
	fits := func(what string) {
		t.Helper()
		if box := b.box(t, "main"); box.ScrollWidth > box.ViewportWidth {
			t.Errorf("%s scrolls sideways at %.0f px: %.0f px wide", what, box.ViewportWidth, box.ScrollWidth)
		}
		b.checkAccessibility(t, what)
		b.screenshot(t, strings.ReplaceAll(what, " ", "-"))
	}

	// María sends a photo as well (through the API, as the app would): it waits
	// behind the demo's two messages that met the watch list.
	_, login := in.JSON(t, "POST", "/api/v1/login", map[string]any{"email": "maria@example.org", "password": "kinlink demo family 2026"})
	bearer := []string{"Authorization", "Bearer " + login["token"].(string)}
	_, people := in.JSON(t, "GET", "/api/v1/contacts", nil, bearer...)
	contact := people["contacts"].([]any)[0].(map[string]any)["id"].(string)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("text", "Mira a tu sobrina en su primer día de escuela")
	part, _ := mw.CreateFormFile("photos", "IMG_0042.jpg")
	part.Write(mediatest.PhoneJPEG(640, 480))
	mw.Close()
	send := in.Do(t, "POST", "/api/v1/contacts/"+contact+"/messages", &body, append(bearer, "Content-Type", mw.FormDataContentType(), "Idempotency-Key", "review-photo")...)
	if got := apptest.Body(t, send); send.StatusCode != 201 {
		t.Fatalf("send a photo: %d %s", send.StatusCode, got)
	}

	// The mail reviewer signs in on a phone.
	b.do(t, chromedp.EmulateViewport(360, 740), chromedp.Navigate(in.URL+"/facility"), at("#portal-login-submit"),
		chromedp.SendKeys(chromedp.CSS("#email"), "mail.reviewer@example.org"), chromedp.SendKeys(chromedp.CSS("#password"), "demo staff 2026"),
		chromedp.Click(chromedp.CSS("#portal-login-submit")), at("#portal-code-submit"))
	code, _ := totp.GenerateCode("KINLINKDEMOMAILREVIEWER2", time.Now())
	b.do(t, chromedp.SendKeys(chromedp.CSS("#code"), code), chromedp.Click(chromedp.CSS("#portal-code-submit")), at("#review-link"),
		chromedp.Navigate(in.URL+"/lang?to=en&next=/facility/review"), at("#review-queue"))

	// The queue, oldest first: the start of each message, the words marked.
	if n := eval[int](t, b, `document.querySelectorAll("#review-queue > li").length`); n != 3 {
		t.Fatalf("%d messages in the queue:\n%s", n, text("main"))
	}
	if got := marks("#review-queue"); got != "drogas|fuga" {
		t.Errorf("the words marked in the queue: %q", got)
	}
	if first := text("#review-queue > li:first-child"); !strings.Contains(first, "las drogas de la clínica") || !strings.Contains(first, "Watch list: “drogas”") {
		t.Errorf("the first message's preview:\n%s", first)
	}
	waitFor("the photo's thumbnail loads", `document.querySelector("#review-queue .thumbs img").naturalWidth > 0`)
	if thumb := b.box(t, "#review-queue .thumbs img"); thumb.Right-thumb.Left > 80 {
		t.Errorf("the thumbnail is %.0f px wide", thumb.Right-thumb.Left)
	}
	fits("review queue")
	b.do(t, chromedp.Navigate(in.URL+"/lang?to=es&next=/facility/review"), at("#review-queue"))
	if !strings.Contains(text("#review-queue > li:first-child"), "Lista de vigilancia: “drogas”") {
		t.Errorf("the Spanish queue:\n%s", text("#review-queue"))
	}
	fits("review queue es")

	// The first message, with the conversation before it.
	b.do(t, chromedp.Click(chromedp.CSS("#review-queue > li:first-child a")), at("#message-text"))
	if got := marks("#message-text"); got != "drogas" || !strings.Contains(text("#watch-words"), "“drogas”") {
		t.Errorf("the opened message marks %q and names %q", got, text("#watch-words"))
	}
	earlier := text("#earlier")
	if n := eval[int](t, b, `document.querySelectorAll("#earlier > li").length`); n != 2 || !strings.Contains(earlier, "María López") ||
		!strings.Contains(earlier, "José García") || !strings.Contains(earlier, "Estoy bien") {
		t.Errorf("the earlier messages (%d):\n%s", n, earlier)
	}
	fits("review message es")
	first := eval[string](t, b, `location.pathname`)
	b.do(t, chromedp.Navigate(in.URL+"/lang?to=en&next="+first), at("#message-text"))
	fits("review message")

	// Approve and next, to the end of the queue.
	b.do(t, chromedp.Click(chromedp.CSS("#approve-next")), at("#review-done"))
	if path := eval[string](t, b, `location.pathname`); path == first || !strings.Contains(text("#message-text"), "fuga del baño") ||
		!strings.Contains(text("#review-done"), "This is the next one waiting") {
		t.Fatalf("after approve and next: %s\n%s", path, text("main"))
	}
	b.do(t, chromedp.Click(chromedp.CSS("#approve-next")), at("#message-photos img"))
	waitFor("the photo loads", `document.querySelector("#message-photos img").naturalWidth === 480`)
	fits("review message with photo")
	b.do(t, chromedp.Click(chromedp.CSS("#approve-next")), at("#no-review"))
	if !strings.Contains(text("main"), "No other message is waiting for you") {
		t.Errorf("the end of the queue:\n%s", text("main"))
	}
	fits("review queue empty")
}
