package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/kinlink/kinlink/internal/apptest"
)

// tap touches the middle of an element, as a finger on a kiosk's screen does (a
// touch start and end, which the browser turns into a tap and a click).
func (b *Browser) tap(t *testing.T, selector string) {
	t.Helper()
	b.do(t, chromedp.ScrollIntoView(chromedp.CSS(selector))) // a finger taps what is on screen
	box := b.box(t, selector)
	if !box.Visible {
		t.Fatalf("nothing to tap at %s", selector)
	}
	x, y := (box.Left+box.Right)/2, (box.Top+box.Bottom)/2
	b.do(t, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, input.DispatchTouchEvent, input.DispatchTouchEventParams{
			Type: input.DispatchTouchEventTypeTouchStart, TouchPoints: []*input.TouchPoint{{X: x, Y: y}}}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, input.DispatchTouchEvent, input.DispatchTouchEventParams{
			Type: input.DispatchTouchEventTypeTouchEnd, TouchPoints: []*input.TouchPoint{}})
		return err
	}))
}

// waitFor polls until the page's expr is true, for up to limit. A page between two
// documents counts as "not yet".
func (b *Browser) waitFor(t *testing.T, what, expr string, limit time.Duration) {
	t.Helper()
	poll := `(() => { try { return !!(` + expr + `); } catch (_) { return false; } })()`
	for deadline := time.Now().Add(limit); ; time.Sleep(100 * time.Millisecond) {
		if ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](poll)); err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: never true within %v: %s", what, limit, expr)
		}
	}
}

// Issue 13, items 26 and 27, on the demo with the kiosk's idle time set to its
// shortest (30 s, so a countdown of 15 s), by touch, at a phone's width and at a
// kiosk's 1080x1920 portrait screen, in English and Spanish, axe-clean throughout:
// José taps the photo María sent and sees it full screen, closes it with its large
// button and with Escape (and the same on the photo's own page); timestamps are
// large; left alone, the kiosk counts down before signing him out; "I'm still here"
// keeps him signed in, on the server too; ignored, the countdown signs him out.
func TestKioskPhotoFullScreenAndIdleCountdown(t *testing.T) {
	b := newBrowserFor(t, 8*time.Minute)
	in := apptest.Start(t, "demo", "sqlite:"+filepath.Join(t.TempDir(), "kinlink.db"), map[string]string{"KINLINK_KIOSK_SESSION_IDLE": "30s"})
	guide := in.WaitStdout(t, "Stop with Ctrl+C")
	code := regexp.MustCompile(`with code (\S+)`).FindStringSubmatch(guide)
	if code == nil {
		t.Fatalf("no kiosk code in the demo guide:\n%s", guide)
	}
	at := func(sel string) chromedp.Action[chromedp.Void] { return chromedp.WaitVisible(chromedp.CSS(sel)) }
	text := func(sel string) string {
		t.Helper()
		return eval[string](t, b, fmt.Sprintf(`document.querySelector(%q).innerText`, sel))
	}
	b.do(t, chromedp.EmulateViewport(1080, 1920, chromedp.EmulatePortrait, chromedp.EmulateTouch),
		chromedp.Navigate(in.URL+"/kiosk"), at("#kiosk-enrol-submit"),
		chromedp.SendKeys(chromedp.CSS("#code"), code[1]), chromedp.Click(chromedp.CSS("#kiosk-enrol-submit")), at("#kiosk-login-submit"))

	for _, c := range []struct {
		lang          string
		width, height int64
		close, signs  string
	}{
		{"en", 360, 740, "Close", "you will be signed out in"},
		{"es", 360, 740, "Cerrar", "su sesión se cerrará en"},
		{"en", 1080, 1920, "Close", "you will be signed out in"},
		{"es", 1080, 1920, "Cerrar", "su sesión se cerrará en"},
	} {
		name := fmt.Sprintf("%s-%dx%d", c.lang, c.width, c.height)
		t.Run(name, func(t *testing.T) {
			b.do(t, chromedp.EmulateViewport(c.width, c.height, chromedp.EmulatePortrait, chromedp.EmulateTouch),
				chromedp.Navigate(in.URL+"/kiosk/lang?to="+c.lang+"&next=/kiosk"), at("#kiosk-login-submit"),
				chromedp.SendKeys(chromedp.CSS("#resident_id"), "D1001"), chromedp.SendKeys(chromedp.CSS("#pin"), "4826"),
				chromedp.Click(chromedp.CSS("#kiosk-login-submit")), at("#kiosk-contacts a"))
			b.tap(t, "#kiosk-contacts a")
			b.do(t, at("#thread a.photo-open img"))
			b.waitFor(t, "the photo loads", `document.querySelector("#thread a.photo-open img").naturalWidth > 0`, 10*time.Second)
			// Timestamps are read at arm's length.
			if px := eval[float64](t, b, `parseFloat(getComputedStyle(document.querySelector("#thread .meta time")).fontSize)`); px < 20 {
				t.Errorf("timestamps are %.1f px", px)
			}
			if eval[bool](t, b, `document.documentElement.scrollWidth > window.innerWidth`) {
				t.Errorf("the thread scrolls sideways")
			}
			b.checkAccessibility(t, "kiosk thread "+name)
			thread := eval[string](t, b, `location.pathname`)

			// The photo, full screen over the page; its large close button closes it.
			b.tap(t, "#thread a.photo-open")
			b.do(t, at("#photo-viewer-close"))
			b.waitFor(t, "the full photo loads", `document.querySelector("#photo-viewer-img").naturalWidth === 960`, 10*time.Second)
			if v := b.box(t, "#photo-viewer"); v.Left > 0.5 || v.Top > 0.5 || v.Right < float64(c.width)-0.5 || v.Bottom < float64(c.height)-0.5 {
				t.Errorf("the photo viewer is not full screen: %+v", v)
			}
			if img := b.box(t, "#photo-viewer-img"); img.Right-img.Left < float64(c.width)*0.9 {
				t.Errorf("the photo is %.0f px wide on a %d px screen", img.Right-img.Left, c.width)
			}
			closer := b.box(t, "#photo-viewer-close")
			if closer.Right-closer.Left < 44 || closer.Bottom-closer.Top < 44 || !strings.Contains(closer.Text, c.close) {
				t.Errorf("the close button: %+v", closer)
			}
			b.screenshot(t, "kiosk-photo-"+name)
			b.checkAccessibility(t, "kiosk photo full screen "+name)
			b.tap(t, "#photo-viewer-close")
			b.waitFor(t, "the close button closes the photo", `!document.querySelector("#photo-viewer").open`, 5*time.Second)
			// Escape closes it too.
			b.tap(t, "#thread a.photo-open")
			b.do(t, at("#photo-viewer-close"), chromedp.KeyEvent(kb.Escape))
			b.waitFor(t, "Escape closes the photo", `!document.querySelector("#photo-viewer").open`, 5*time.Second)
			if got := eval[string](t, b, `location.pathname`); got != thread {
				t.Errorf("closing the photo left the thread for %s", got)
			}
			// The photo's own page (where its link leads without the script) stays in
			// the kiosk, and Escape goes back.
			href := eval[string](t, b, `document.querySelector("#thread a.photo-open").getAttribute("href")`)
			b.do(t, chromedp.Navigate(in.URL+href), at("#photo-close"))
			b.checkAccessibility(t, "kiosk photo page "+name)
			b.do(t, chromedp.KeyEvent(kb.Escape), at("#thread"))

			// Left alone, the kiosk counts down before signing out.
			b.waitFor(t, "the countdown", `document.querySelector("#idle-warning").open`, 25*time.Second)
			if s := text("#idle-text"); !strings.Contains(s, c.signs) {
				t.Errorf("the countdown says %q", s)
			}
			if n, err := strconv.Atoi(text("#idle-count")); err != nil || n < 1 || n > 15 {
				t.Errorf("the countdown shows %q", text("#idle-count"))
			}
			if got := eval[string](t, b, `document.activeElement.id`); got != "still-here" {
				t.Errorf("the countdown does not take the focus to its button: %q", got)
			}
			if stay := b.box(t, "#still-here"); stay.Bottom-stay.Top < 44 {
				t.Errorf("I'm still here is %.0f px tall", stay.Bottom-stay.Top)
			}
			b.screenshot(t, "kiosk-countdown-"+name)
			b.checkAccessibility(t, "kiosk countdown "+name)
			b.tap(t, "#still-here")
			b.waitFor(t, "I'm still here closes the countdown", `!document.querySelector("#idle-warning").open`, 5*time.Second)
			// The tap stays on the button: nothing under the countdown is opened.
			if got := eval[string](t, b, `location.pathname`); got != thread || eval[bool](t, b, `document.querySelector("#photo-viewer").open`) {
				t.Errorf("the tap on I'm still here reached the page under it: %s", got)
			}
			// The next countdown comes more than the 30 s idle time after the page
			// was loaded: the session lives on at the server only because "I'm still
			// here" told it so.
			b.waitFor(t, "the countdown again", `document.querySelector("#idle-warning").open`, 25*time.Second)
			status := eval[int](t, b, `fetch("/kiosk/alive", {method: "POST"}).then(r => r.status)`, chromedp.EvalAwaitPromise)
			if status != 204 {
				t.Errorf("the server ended the session the resident kept: %d", status)
			}
			// Ignored, it signs out.
			b.waitFor(t, "the idle sign-out", `!!document.querySelector("#kiosk-login-submit")`, 25*time.Second)
			if strings.Contains(text("body"), "José") {
				t.Errorf("the next person at the kiosk sees the last resident's name")
			}
			b.checkAccessibility(t, "kiosk signed out "+name)
		})
	}
}
