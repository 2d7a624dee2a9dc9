package e2e

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/kinlink/kinlink/internal/apptest"
)

// Check my camera, on a phone 360 px wide, in English and Spanish: María starts
// the check with the browser's (fake) camera, her picture comes back through the
// server, and the page gives its verdict in words. Each screen fits the width and
// passes axe, and so does the agency page with its cap on visit video.
func TestCameraCheckOnAPhone(t *testing.T) {
	apptest.NeedMediaTools(t) // visits are recorded: a server with them on needs ffmpeg
	b := newBrowserWith(t, 3*time.Minute, chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true), chromedp.Flag("autoplay-policy", "no-user-gesture-required"))
	in := apptest.Start(t, "demo", "sqlite:"+filepath.Join(t.TempDir(), "kinlink.db"), map[string]string{"KINLINK_VIDEO_VISITS": "on"})
	in.WaitStdout(t, "Stop with Ctrl+C")
	at := func(sel string) chromedp.Action[chromedp.Void] { return chromedp.WaitVisible(chromedp.CSS(sel)) }
	screen := func(name string) {
		t.Helper()
		if box := b.box(t, "body"); box.ScrollWidth > box.ViewportWidth {
			t.Errorf("%s: the page is %.0f px wide in a %.0f px window", name, box.ScrollWidth, box.ViewportWidth)
		}
		b.screenshot(t, name)
		b.checkAccessibility(t, name)
	}
	b.do(t, chromedp.EmulateViewport(360, 740))
	b.do(t, chromedp.Navigate(in.URL+"/login"), at("#login-submit"),
		chromedp.SendKeys(chromedp.CSS("#email"), "maria@example.org"), chromedp.SendKeys(chromedp.CSS("#password"), "kinlink demo family 2026"),
		chromedp.Click(chromedp.CSS("#login-submit")), at("#my-people"))
	for _, lang := range []string{"en", "es"} {
		b.do(t, chromedp.Navigate(in.URL+"/lang?to="+lang), at(`html[lang="`+lang+`"] body`))
		b.do(t, chromedp.Navigate(in.URL+"/visits"), at("#check-camera"), chromedp.Click(chromedp.CSS("#check-camera")), at("#check-start"))
		screen("camera-check-" + lang)
		b.do(t, chromedp.Click(chromedp.CSS("#check-start")))
		b.do(t, chromedp.WaitVisible(chromedp.CSS("#check-verdict")))
		if frames := eval[float64](t, b, `document.getElementById("check-back").videoWidth`); frames == 0 {
			t.Errorf("%s: no picture came back through the server", lang)
		}
		if v := eval[string](t, b, `document.getElementById("check-verdict").dataset.verdict`); v == "" {
			t.Errorf("%s: no verdict", lang)
		}
		screen("camera-check-done-" + lang)
	}

	b.do(t, chromedp.Navigate(in.URL+"/facility"), at("#portal-login-submit"),
		chromedp.SendKeys(chromedp.CSS("#email"), "agency.admin@example.org"), chromedp.SendKeys(chromedp.CSS("#password"), "demo staff 2026"),
		chromedp.Click(chromedp.CSS("#portal-login-submit")), at("#portal-code-submit"))
	code, _ := totp.GenerateCode("KINLINKDEMOAGENCYADMIN22", time.Now())
	b.do(t, chromedp.SendKeys(chromedp.CSS("#code"), code), chromedp.Click(chromedp.CSS("#portal-code-submit")), at("#portal-logout"))
	for _, lang := range []string{"en", "es"} {
		b.do(t, chromedp.Navigate(in.URL+"/lang?to="+lang), chromedp.Navigate(in.URL+"/facility/agency"), at("#video_kbps"))
		screen("agency-video-" + lang)
	}
}
