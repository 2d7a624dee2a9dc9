package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/kinlink/kinlink/internal/apptest"
)

// Issue 14: on the demo, María records a 5-second VideoGram with the camera (a fake
// one) on a phone 360 px wide and sends it; the mail reviewer watches and approves
// it; José plays it at the kiosk (about 5 s long, and its time advances); María sees
// it watched. José records a VideoGram reply with the kiosk's camera; once the
// reviewer approves it, María plays it. The pages are axe-clean and fit the phone in
// English and Spanish.
func TestVideoGramJourney(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		missing(t, "no ffmpeg")
	}
	b := newBrowserWith(t, 4*time.Minute, chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true), chromedp.Flag("autoplay-policy", "no-user-gesture-required"))
	in := apptest.Start(t, "demo", "sqlite:"+filepath.Join(t.TempDir(), "kinlink.db"), nil)
	guide := in.WaitStdout(t, "Stop with Ctrl+C")
	kioskCode := regexp.MustCompile(`with code (\S+)`).FindStringSubmatch(guide)[1]
	text := func(sel string) string {
		t.Helper()
		return eval[string](t, b, fmt.Sprintf(`(document.querySelector(%q) || {innerText: ""}).innerText`, sel))
	}
	fits := func(what string) {
		t.Helper()
		if box := b.box(t, "main"); box.ScrollWidth > box.ViewportWidth {
			t.Errorf("%s scrolls sideways at %.0f px: %.0f px wide", what, box.ViewportWidth, box.ScrollWidth)
		}
		b.checkAccessibility(t, what)
		b.screenshot(t, strings.ReplaceAll(what, " ", "-"))
	}
	// reloadUntil reloads the page until the last bubble of the thread has want.
	reloadUntil := func(what, want string) {
		t.Helper()
		last := "#thread > li:last-child"
		for deadline := time.Now().Add(60 * time.Second); !strings.Contains(text(last), want); time.Sleep(500 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: never %q:\n%s", what, want, text(last))
			}
			b.do(t, chromedp.Reload(), at("main"))
		}
	}

	// María, on a phone: the conversation offers a VideoGram, with its price.
	b.do(t, chromedp.EmulateViewport(360, 740), chromedp.Navigate(in.URL+"/login"), at("#login-submit"),
		chromedp.SendKeys(chromedp.CSS("#email"), "maria@example.org"), chromedp.SendKeys(chromedp.CSS("#password"), "kinlink demo family 2026"),
		chromedp.Click(chromedp.CSS("#login-submit")), chromedp.WaitNotPresent(chromedp.CSS("#login-submit")))
	// She goes on in Spanish: the states and the timer are said in her language.
	for _, c := range []struct{ lang, title, cost string }{
		{"en", "Record a VideoGram", "This VideoGram: 3 stamps ($0.30)."},
		{"es", "Grabar un VideoGrama", "Este VideoGrama: 3 sellos ($0.30)."},
	} {
		b.do(t, chromedp.Navigate(in.URL+"/lang?to="+c.lang+"&next=/people"), at("#mine-title"),
			chromedp.Click(chromedp.CSS(`a[href$="/messages#latest"]`)), at("#videogram-record"))
		if got := text("#videogram"); !strings.Contains(got, c.title) || !strings.Contains(got, c.cost) {
			t.Errorf("the VideoGram section in %s:\n%s", c.lang, got)
		}
		fits("videogram form " + c.lang)
	}
	conversation := eval[string](t, b, `location.pathname`)

	// She records five seconds, watches it back and sends it.
	b.do(t, chromedp.Click(chromedp.CSS("#videogram-record")), at("#videogram-stop"))
	b.waitFor(t, "five seconds recorded", `document.querySelector("[data-timer]").textContent.startsWith("Grabando 0:05")`, 20*time.Second)
	b.do(t, chromedp.Click(chromedp.CSS("#videogram-stop")))
	b.waitFor(t, "the clip is ready to send", `!document.querySelector("#videogram-send").disabled && !document.querySelector("#videogram-again").hidden`, 10*time.Second)
	fits("videogram recorded")
	b.do(t, chromedp.Click(chromedp.CSS("#videogram-send")))
	b.waitFor(t, "sent", `location.search.includes("sent=1")`, 30*time.Second)
	reloadUntil("the clip converted", "Esperando revisión")
	fits("videogram in review")
	b.do(t, chromedp.Navigate(in.URL+"/lang?to=en&next=/people"), at("#mine-title"))

	// The mail reviewer watches it and approves it.
	b.do(t, chromedp.Navigate(in.URL+"/facility"), at("#portal-login-submit"),
		chromedp.SendKeys(chromedp.CSS("#email"), "mail.reviewer@example.org"), chromedp.SendKeys(chromedp.CSS("#password"), "demo staff 2026"),
		chromedp.Click(chromedp.CSS("#portal-login-submit")), at("#portal-code-submit"))
	code, _ := totp.GenerateCode("KINLINKDEMOMAILREVIEWER2", time.Now())
	b.do(t, chromedp.SendKeys(chromedp.CSS("#code"), code), chromedp.Click(chromedp.CSS("#portal-code-submit")), at("#review-link"),
		chromedp.Navigate(in.URL+"/facility/review"), at("#review-queue"))
	if q := text("#review-queue"); !regexp.MustCompile(`VideoGram · 0:0[456]`).MatchString(q) {
		t.Fatalf("the queue does not name the VideoGram and its length:\n%s", q)
	}
	fits("review queue with a videogram")
	href := eval[string](t, b, `[...document.querySelectorAll("#review-queue > li")].find(li => li.innerText.includes("VideoGram")).querySelector("a").getAttribute("href")`)
	b.do(t, chromedp.Navigate(in.URL+href), at("#message-video video"))
	b.waitFor(t, "the reviewer's player knows the length", `document.querySelector("#message-video video").duration > 4`, 10*time.Second)
	fits("review videogram")
	b.do(t, chromedp.Click(chromedp.CSS("#approve")), at("#review-queue, #no-review"))

	// José, at the kiosk: the poster; a tap plays it full screen.
	b.do(t, chromedp.EmulateViewport(360, 740, chromedp.EmulatePortrait, chromedp.EmulateTouch),
		chromedp.Navigate(in.URL+"/kiosk"), at("#kiosk-enrol-submit"),
		chromedp.SendKeys(chromedp.CSS("#code"), kioskCode), chromedp.Click(chromedp.CSS("#kiosk-enrol-submit")), at("#kiosk-login-submit"),
		chromedp.SendKeys(chromedp.CSS("#resident_id"), "D1001"), chromedp.SendKeys(chromedp.CSS("#pin"), "4826"),
		chromedp.Click(chromedp.CSS("#kiosk-login-submit")), at("#kiosk-contacts a"))
	b.tap(t, "#kiosk-contacts a")
	b.do(t, at("#thread a.videogram-open img"))
	b.waitFor(t, "the poster loads", `document.querySelector("#thread a.videogram-open img").naturalWidth > 0`, 10*time.Second)
	fits("kiosk thread with a videogram")
	b.tap(t, "#thread a.videogram-open")
	b.waitFor(t, "the clip plays", `document.querySelector("#video-viewer").open && document.querySelector("#video-viewer-video").currentTime > 1`, 20*time.Second)
	if d := eval[float64](t, b, `document.querySelector("#video-viewer-video").duration`); d < 4 || d > 7 {
		t.Errorf("the clip is %.1f s long", d)
	}
	if v := b.box(t, "#video-viewer"); v.Left > 0.5 || v.Top > 0.5 || v.Right < 359.5 {
		t.Errorf("the player is not full screen: %+v", v)
	}
	if c := b.box(t, "#video-viewer-close"); c.Right-c.Left < 44 || c.Bottom-c.Top < 44 {
		t.Errorf("the close button is small: %+v", c)
	}
	b.checkAccessibility(t, "kiosk videogram playing")
	b.tap(t, "#video-viewer-close")
	b.waitFor(t, "closed", `!document.querySelector("#video-viewer").open`, 5*time.Second)

	// He answers with a VideoGram of his own: three seconds with the kiosk's camera.
	thread := eval[string](t, b, `location.pathname`)
	for _, c := range []struct{ lang, title string }{{"es", "Grabar un VideoGrama"}, {"en", "Record a VideoGram"}} {
		b.do(t, chromedp.Navigate(in.URL+"/kiosk/lang?to="+c.lang+"&next="+thread), at("#videogram-record"))
		if got := text("#videogram"); !strings.Contains(got, c.title) {
			t.Errorf("the kiosk's VideoGram reply in %s:\n%s", c.lang, got)
		}
		fits("kiosk videogram reply " + c.lang)
	}
	b.tap(t, "#videogram-record")
	b.waitFor(t, "three seconds recorded", `document.querySelector("#videogram [data-timer]").textContent.startsWith("Recording 0:03")`, 20*time.Second)
	b.tap(t, "#videogram-stop")
	b.waitFor(t, "the reply is ready to send", `!document.querySelector("#videogram-send").disabled`, 10*time.Second)
	b.tap(t, "#videogram-send")
	time.Sleep(8 * time.Second)
	t.Logf("DEBUG %q %q", eval[string](t, b, `location.href`), text("main"))
	// The send's own answer: the thread again, at its newest message.
	b.waitFor(t, "the reply is sent", `location.hash === "#latest" && document.readyState === "complete"`, 30*time.Second)
	reloadUntil("the reply converted", "Waiting for review")
	fits("kiosk videogram reply in review")

	// The reviewer approves it.
	b.do(t, chromedp.EmulateViewport(360, 740), chromedp.Navigate(in.URL+"/facility/review"), at("#review-queue"))
	href = eval[string](t, b, `[...document.querySelectorAll("#review-queue > li")].find(li => li.innerText.includes("Reply to")).querySelector("a").getAttribute("href")`)
	b.do(t, chromedp.Navigate(in.URL+href), at("#message-video video"))
	fits("review videogram reply")
	b.do(t, chromedp.Click(chromedp.CSS("#approve")), at("#review-queue, #no-review"))

	// María sees hers watched, and plays José's.
	b.do(t, chromedp.Navigate(in.URL+conversation), at("#thread"))
	reloadUntil("his reply", "VideoGram")
	if !strings.Contains(text("#thread"), "Watched") {
		t.Errorf("her VideoGram is not shown watched:\n%s", text("#thread"))
	}
	fits("videogram watched and answered")
	b.waitFor(t, "his reply plays", `(() => { const v = document.querySelector("#thread > li:last-child video"); v.muted = true; v.play(); return v.duration > 2 && v.duration < 5 && v.currentTime > 0.5; })()`, 20*time.Second)
}
