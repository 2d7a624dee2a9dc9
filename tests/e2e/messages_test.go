package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/kinlink/kinlink/internal/apptest"
	"github.com/kinlink/kinlink/internal/media/mediatest"
)

// On the demo data: María tops up and writes to José with a photo at a phone's
// width; the mail reviewer approves it; José reads it at the kiosk, sees a new
// message arrive without reloading, and replies; María sees "read" and the reply.
func TestMessageJourney(t *testing.T) {
	b := newBrowser(t)
	in := apptest.Start(t, "demo", "sqlite:"+filepath.Join(t.TempDir(), "kinlink.db"), nil)
	guide := in.WaitStdout(t, "Stop with Ctrl+C")
	kioskCode := regexp.MustCompile(`with code (\S+)`).FindStringSubmatch(guide)
	if kioskCode == nil {
		t.Fatalf("no kiosk code in the demo guide:\n%s", guide)
	}
	at := func(sel string) chromedp.Action[chromedp.Void] { return chromedp.WaitVisible(chromedp.CSS(sel)) }
	js := func(expr string) bool { t.Helper(); return eval[bool](t, b, expr) }
	// waitFor polls until expr is true. A page between two documents (a form just
	// sent) is "not yet": a missing element or a context that went with the old
	// page counts as false, not as a failure.
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
	familyLogin := func() {
		t.Helper()
		b.do(t, chromedp.Navigate(in.URL+"/login"), at("#login-submit"),
			chromedp.SendKeys(chromedp.CSS("#email"), "maria@example.org"), chromedp.SendKeys(chromedp.CSS("#password"), "kinlink demo family 2026"),
			chromedp.Click(chromedp.CSS("#login-submit")), chromedp.WaitNotPresent(chromedp.CSS("#login-submit")),
			// María's account speaks Spanish, which her pages now follow at sign-in;
			// she switches this browser to English, as the checks below read it.
			chromedp.Navigate(in.URL+"/lang?to=en&next=/people"), at("#mine-title"))
	}

	// María, on a phone: top up, then write with a photo taken by her phone.
	b.do(t, chromedp.EmulateViewport(390, 844))
	familyLogin()
	b.do(t, chromedp.Navigate(in.URL+"/wallet"), at("#topup-submit"),
		chromedp.SetValue(chromedp.CSS("#amount"), "20"), chromedp.Click(chromedp.CSS("#topup-submit")), at("#wallet-done"))
	if balance := eval[string](t, b, `document.querySelector("#balance").innerText`); balance != "$69.50" {
		t.Errorf("balance after a $20 top-up: %s", balance)
	}
	b.do(t, chromedp.Navigate(in.URL+"/people"), at(`a[href$="/messages#latest"]`), chromedp.Click(chromedp.CSS(`a[href$="/messages#latest"]`)), at("#send"))
	b.checkAccessibility(t, "conversation")
	photo := filepath.Join(t.TempDir(), "IMG_0042.jpg")
	os.WriteFile(photo, mediatest.PhoneJPEG(640, 480), 0o600)
	b.do(t, chromedp.SendKeys(chromedp.CSS("#text"), "Mira a tu sobrina en su primer día de escuela 📚"),
		chromedp.SetUploadFiles(chromedp.CSS("#photos"), []string{photo}))
	// The cost shown before sending counts the photo.
	waitFor("the cost counts the photo", `document.querySelector("#message-cost").innerText === "This message: 2 stamps ($0.20)."`)
	js(`(() => { const i = document.querySelector("#photos"); i.value = ""; i.dispatchEvent(new Event("change")); return true })()`) // the choice cleared
	waitFor("the cost without the photo", `document.querySelector("#message-cost").innerText === "This message: 1 stamp ($0.10)."`)
	b.do(t, chromedp.SetUploadFiles(chromedp.CSS("#photos"), []string{photo}))
	waitFor("the cost counts the photo again", `document.querySelector("#message-cost").innerText === "This message: 2 stamps ($0.20)."`)
	// Wait for the answer to the send itself: the demo's conversation already shows a
	// photo, so a photo on the page alone does not say the send came back.
	photos := eval[int](t, b, `document.querySelectorAll("#thread img").length`)
	b.do(t, chromedp.Click(chromedp.CSS("#send")))
	waitFor("the message is sent", fmt.Sprintf(`location.search.includes("sent=1") && document.querySelectorAll("#thread img").length === %d`, photos+1))
	if js(`document.documentElement.scrollWidth > window.innerWidth`) {
		t.Errorf("the conversation scrolls sideways at a phone's width")
	}
	b.screenshot(t, "conversation-phone")
	conversation := eval[string](t, b, `location.pathname`)
	b.do(t, chromedp.Navigate(in.URL+"/account"), at("#logout"), chromedp.Click(chromedp.CSS("#logout")), at("#login-submit"))

	// The mail reviewer approves it.
	b.do(t, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(in.URL+"/facility"), at("#portal-login-submit"),
		chromedp.SendKeys(chromedp.CSS("#email"), "mail.reviewer@example.org"), chromedp.SendKeys(chromedp.CSS("#password"), "demo staff 2026"),
		chromedp.Click(chromedp.CSS("#portal-login-submit")), at("#portal-code-submit"))
	code, _ := totp.GenerateCode("KINLINKDEMOMAILREVIEWER2", time.Now())
	b.do(t, chromedp.SendKeys(chromedp.CSS("#code"), code), chromedp.Click(chromedp.CSS("#portal-code-submit")), at("#review-link"),
		chromedp.Click(chromedp.CSS("#review-link")), at("#review-queue"))
	b.checkAccessibility(t, "review queue")
	b.do(t, chromedp.Click(chromedp.CSS("#review-queue li:last-child a")), at("#message-photos img"))
	b.checkAccessibility(t, "review item")
	if !strings.Contains(eval[string](t, b, `document.querySelector("#message-text").innerText`), "primer día") {
		t.Fatalf("the reviewer opened another message")
	}
	waitFor("the photo loads for the reviewer", `document.querySelector("#message-photos img").naturalWidth === 480`)
	b.do(t, chromedp.Click(chromedp.CSS("#approve")), at("#review-queue, #no-review"),
		chromedp.Click(chromedp.CSS("#portal-logout")), at("#portal-login-submit"))

	// José at the kiosk: reads it with the photo, upright.
	b.do(t, chromedp.EmulateViewport(800, 1280), chromedp.Navigate(in.URL+"/kiosk"), at("#kiosk-enrol-submit"),
		chromedp.SendKeys(chromedp.CSS("#code"), kioskCode[1]), chromedp.Click(chromedp.CSS("#kiosk-enrol-submit")), at("#kiosk-login-submit"),
		chromedp.SendKeys(chromedp.CSS("#resident_id"), "D1001"), chromedp.SendKeys(chromedp.CSS("#pin"), "4826"),
		chromedp.Click(chromedp.CSS("#kiosk-login-submit")), at("#kiosk-contacts .badge"))
	b.do(t, chromedp.Click(chromedp.CSS("#kiosk-contacts a")), at("#thread img"))
	b.checkAccessibility(t, "kiosk thread")
	waitFor("the photo loads at the kiosk", `[...document.querySelectorAll("#thread img")].pop().naturalWidth === 480`)

	// A message delivered while the page is open appears on it.
	_, login := in.JSON(t, "POST", "/api/v1/login", map[string]any{"email": "maria@example.org", "password": "kinlink demo family 2026"})
	contact := strings.Split(strings.TrimPrefix(conversation, "/people/"), "/")[0]
	send := in.Do(t, "POST", "/api/v1/contacts/"+contact+"/messages", strings.NewReader("text=Te+llamo+el+domingo"),
		"Authorization", "Bearer "+login["token"].(string), "Content-Type", "application/x-www-form-urlencoded", "Idempotency-Key", "live-1")
	if body := apptest.Body(t, send); send.StatusCode != 201 {
		t.Fatalf("send while the kiosk is open: %d %s", send.StatusCode, body)
	}
	waitFor("the new message appears without a reload", `document.querySelector("#thread").innerText.includes("Te llamo el domingo")`)
	// José is at the screen (he touches it): the message he sees is read, for María too.
	b.do(t, chromedp.Click(chromedp.CSS("h1")))
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, thread := in.JSON(t, "GET", "/api/v1/contacts/"+contact+"/messages", nil, "Authorization", "Bearer "+login["token"].(string))
		msgs := thread["messages"].([]any)
		if last := msgs[len(msgs)-1].(map[string]any); last["text"] == "Te llamo el domingo" && last["state"] == "read" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the message that arrived on the open kiosk is not read after José touched the screen: %v", msgs[len(msgs)-1])
		}
	}
	b.do(t, chromedp.SendKeys(chromedp.CSS("#text"), "Gracias mamá. Qué bonita está."), chromedp.Click(chromedp.CSS("#reply-send")), at("#thread"))
	waitFor("the reply is in the thread", `document.querySelector("#thread").innerText.includes("Qué bonita está")`)
	b.screenshot(t, "kiosk-thread")
	b.do(t, chromedp.Click(chromedp.CSS("#kiosk-logout")), at("#kiosk-login-submit"))

	// María sees "read" and the reply.
	b.do(t, chromedp.EmulateViewport(390, 844))
	familyLogin()
	b.do(t, chromedp.Navigate(in.URL+conversation), at("#thread"))
	if !js(`!!document.querySelector("#thread .state-read")`) || !js(`document.querySelector("#thread").innerText.includes("Qué bonita está")`) {
		t.Errorf("María does not see the read state and the reply:\n%s", eval[string](t, b, `document.querySelector("#thread").innerText`))
	}
}
