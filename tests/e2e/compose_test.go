package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/kinlink/kinlink/internal/apptest"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/media/mediatest"
)

// demoFamily starts the demo and returns it with a browser and steps for María: sign
// in, in a language, and open her conversation with José.
type demoFamily struct {
	in *apptest.Instance
	b  *Browser
	t  *testing.T
}

func startDemo(t *testing.T) *demoFamily {
	b := newBrowser(t)
	in := apptest.Start(t, "demo", "sqlite:"+filepath.Join(t.TempDir(), "kinlink.db"), nil)
	in.WaitStdout(t, "Stop with Ctrl+C")
	return &demoFamily{in: in, b: b, t: t}
}

func at(sel string) chromedp.Action[chromedp.Void] { return chromedp.WaitVisible(chromedp.CSS(sel)) }

// waitFor polls until expr is true in the page. A page between two documents (a
// form just sent) is "not yet": a missing element or a context that went with the
// old page counts as false, not as a failure.
func (d *demoFamily) waitFor(what, expr string) {
	d.t.Helper()
	poll := `(() => { try { return !!(` + expr + `); } catch (_) { return false; } })()`
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if ok, err := chromedp.Run(d.b.ctx, chromedp.Evaluate[bool](poll)); err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("%s: never true: %s", what, expr)
		}
	}
}

// signIn signs María in on a phone's width and opens her conversation with José in
// lang.
func (d *demoFamily) signIn(lang string) {
	d.t.Helper()
	d.b.do(d.t, chromedp.EmulateViewport(360, 740), chromedp.Navigate(d.in.URL+"/login"), at("#login-submit"),
		chromedp.SendKeys(chromedp.CSS("#email"), "maria@example.org"), chromedp.SendKeys(chromedp.CSS("#password"), "kinlink demo family 2026"),
		chromedp.Click(chromedp.CSS("#login-submit")), chromedp.WaitNotPresent(chromedp.CSS("#login-submit")))
	d.open(lang)
}

// open goes to the conversation in lang.
func (d *demoFamily) open(lang string) {
	d.t.Helper()
	d.b.do(d.t, chromedp.Navigate(d.in.URL+"/lang?to="+lang+"&next=/people"), at("#mine-title"),
		chromedp.Click(chromedp.CSS(`a[href$="/messages#latest"]`)), at("#send"))
}

// photos writes n phone photos to files named IMG_1.jpg…, and returns their paths.
func photos(t *testing.T, n int) []string {
	dir := t.TempDir()
	var paths []string
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("IMG_%d.jpg", i+1))
		os.WriteFile(p, mediatest.PhoneJPEG(320+40*i, 240), 0o600)
		paths = append(paths, p)
	}
	return paths
}

// composeWords are what the compose form says, per language.
var composeWords = map[string]map[string]string{
	"en": {"add": "Add photos", "remove": "Remove photo %d", "alt": "Photo %d: IMG_%d.jpg", "removed": "Photo 2 removed.",
		"cost4": "This message: 4 stamps ($0.40).", "cost3": "This message: 3 stamps ($0.30)."},
	"es": {"add": "Agregar fotos", "remove": "Quitar foto %d", "alt": "Foto %d: IMG_%d.jpg", "removed": "Se quitó la foto 2.",
		"cost4": "Este mensaje: 4 sellos ($0.40).", "cost3": "Este mensaje: 3 sellos ($0.30)."},
}

// Issue 13, item 21: on a phone, María chooses three photos with the large "Add
// photos" button and sees them as thumbnails, each with its own large "Remove"
// button; she removes the second, the cost follows, and the message goes with the
// two she kept. In English and Spanish, 360 px wide without sideways scrolling, and
// axe-clean with the previews shown.
func TestComposeWithPhotos(t *testing.T) {
	d := startDemo(t)
	b := d.b
	signedIn := false
	for _, lang := range []string{"en", "es"} {
		t.Run(lang, func(t *testing.T) {
			d.t = t
			say := composeWords[lang]
			if !signedIn {
				d.signIn(lang)
				signedIn = true
			} else {
				d.open(lang)
			}
			add := b.box(t, "label.add-photos")
			if !add.Visible || add.Text != say["add"] || add.Bottom-add.Top < 44 || add.Right-add.Left < 200 {
				t.Errorf("the Add photos button: %+v", add)
			}
			// The input itself is hidden, but takes the focus and the keys.
			if !eval[bool](t, b, `(() => { const i = document.querySelector("#photos"); i.focus(); return document.activeElement === i })()`) {
				t.Errorf("the photos input cannot take the focus")
			}

			text := "Fotos del cumpleaños (" + lang + ")"
			b.do(t, chromedp.SendKeys(chromedp.CSS("#text"), text), chromedp.SetUploadFiles(chromedp.CSS("#photos"), photos(t, 3)))
			d.waitFor("three previews", `document.querySelectorAll("#photo-previews li img").length === 3`)
			d.waitFor("the previews load", `[...document.querySelectorAll("#photo-previews img")].every(i => i.complete && i.naturalWidth > 0)`)
			if got := eval[string](t, b, `document.querySelector("#message-cost").innerText`); got != say["cost4"] {
				t.Errorf("the cost with three photos: %q", got)
			}
			for i := 1; i <= 3; i++ {
				button := b.box(t, fmt.Sprintf("#photo-previews li:nth-child(%d) button", i))
				name := eval[string](t, b, fmt.Sprintf(`document.querySelector("#photo-previews li:nth-child(%d) button").textContent`, i))
				alt := eval[string](t, b, fmt.Sprintf(`document.querySelector("#photo-previews li:nth-child(%d) img").alt`, i))
				if name != fmt.Sprintf(say["remove"], i) || alt != fmt.Sprintf(say["alt"], i, i) || button.Bottom-button.Top < 44 || button.Right-button.Left < 44 {
					t.Errorf("preview %d: button %q %+v, picture %q", i, name, button, alt)
				}
			}
			if w := b.box(t, "body"); w.ScrollWidth > w.ViewportWidth {
				t.Errorf("the form with three previews is %.0f px wide in %.0f px: it scrolls sideways", w.ScrollWidth, w.ViewportWidth)
			}
			b.screenshot(t, "compose-previews-"+lang)
			b.checkAccessibility(t, "compose with previews ("+lang+")")

			// Remove the second: it is gone from what is sent, and the cost follows.
			b.do(t, chromedp.Click(chromedp.CSS("#photo-previews li:nth-child(2) button")))
			d.waitFor("two previews", `document.querySelectorAll("#photo-previews li").length === 2`)
			if files := eval[string](t, b, `[...document.querySelector("#photos").files].map(f => f.name).join(",")`); files != "IMG_1.jpg,IMG_3.jpg" {
				t.Errorf("the input's files after removing the second: %q", files)
			}
			if got := eval[string](t, b, `document.querySelector("#message-cost").innerText`); got != say["cost3"] {
				t.Errorf("the cost after removing a photo: %q", got)
			}
			if got := eval[string](t, b, `document.querySelector("#photos-status").textContent`); got != say["removed"] {
				t.Errorf("the removal is said as %q", got)
			}
			// The focus stays in the list: on the photo that took the removed one's place.
			if got := eval[string](t, b, `document.activeElement.textContent`); got != fmt.Sprintf(say["remove"], 2) {
				t.Errorf("after removing, the focus is on %q", got)
			}
			b.checkAccessibility(t, "compose after removing a photo ("+lang+")")

			b.do(t, chromedp.Click(chromedp.CSS("#send")))
			d.waitFor("the message is sent", `location.search.includes("sent=1") && document.querySelector("#thread")`)
			last := `[...document.querySelectorAll("#thread > li")].pop()`
			if got := eval[string](t, b, last+`.querySelector(".text").innerText`); got != text {
				t.Fatalf("the last message is %q", got)
			}
			if n := eval[int](t, b, last+`.querySelectorAll(".photos img").length`); n != 2 {
				t.Errorf("the sent message has %d photos, want the 2 kept", n)
			}
			if w := b.box(t, "body"); w.ScrollWidth > w.ViewportWidth {
				t.Errorf("the conversation scrolls sideways at 360 px")
			}
		})
	}

	// Without JavaScript the plain file input shows, and sends what it holds.
	t.Run("without JavaScript", func(t *testing.T) {
		d.t = t
		if _, err := chromedp.Call(b.ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
			t.Fatal(err)
		}
		defer chromedp.Call(b.ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: false})
		d.open("en")
		if input := b.box(t, "#photos"); !input.Visible || input.Right-input.Left < 100 || eval[bool](t, b, `!!document.querySelector(".photo-picker.enhanced")`) {
			t.Errorf("without JavaScript the file input is not the plain one: %+v", input)
		}
		b.do(t, chromedp.SendKeys(chromedp.CSS("#text"), "Sin JavaScript"), chromedp.SetUploadFiles(chromedp.CSS("#photos"), photos(t, 1)),
			chromedp.Click(chromedp.CSS("#send")))
		d.waitFor("the message is sent", `location.search.includes("sent=1") && document.querySelector("#thread")`)
		last := `[...document.querySelectorAll("#thread > li")].pop()`
		if got, n := eval[string](t, b, last+`.querySelector(".text").innerText`), eval[int](t, b, last+`.querySelectorAll(".photos img").length`); got != "Sin JavaScript" || n != 1 {
			t.Errorf("the message sent without JavaScript: %q with %d photos", got, n)
		}
	})
}

// Issue 13, item 20, in the browser: María writes a message with a large photo
// when her wallet cannot pay for it. The server refuses before the photo arrives,
// and the page comes back with her text and a way to the wallet; she adds money
// there and comes back to the conversation, where the text she wrote is waiting
// (kept in the tab by the draft script). Once sent, the draft is forgotten.
func TestDraftSurvivesATopUpInTheBrowser(t *testing.T) {
	d := startDemo(t)
	b := d.b
	// A stamp now costs $60: María's $49.80 pays for no message.
	db := dbtest.Open(t, d.in.Env["KINLINK_DATABASE"])
	if _, err := db.Write().Exec("UPDATE agencies SET stamp_price_cents = 6000"); err != nil {
		t.Fatal(err)
	}
	d.signIn("en")
	const draft = "Feliz cumpleaños, mijo. Te extrañamos mucho 🎂"
	large := filepath.Join(t.TempDir(), "IMG_big.jpg")
	os.WriteFile(large, append(mediatest.JPEG(64, 48), make([]byte, 9<<20)...), 0o600)
	b.do(t, chromedp.SendKeys(chromedp.CSS("#text"), draft), chromedp.SetUploadFiles(chromedp.CSS("#photos"), []string{large}),
		chromedp.Click(chromedp.CSS("#send")), at("#add-money"))
	if msg := eval[string](t, b, `document.querySelector("#form-message").innerText`); !strings.Contains(msg, "not enough money") || !strings.Contains(msg, "choose the photos again") {
		t.Errorf("the refusal says %q", msg)
	}
	if kept := eval[string](t, b, `document.querySelector("#text").value`); kept != draft {
		t.Errorf("the refused page keeps %q", kept)
	}
	b.checkAccessibility(t, "not enough money")

	b.do(t, chromedp.Click(chromedp.CSS("#add-money")), at("#topup-submit"))
	if !eval[bool](t, b, `!!document.querySelector("#back-to-draft")`) {
		t.Errorf("the wallet offers no way back to the message")
	}
	b.do(t, chromedp.SetValue(chromedp.CSS("#amount"), "20"), chromedp.Click(chromedp.CSS("#topup-submit")))
	d.waitFor("back at the conversation", `location.pathname.endsWith("/messages") && document.querySelector("#send")`)
	d.waitFor("the draft is back", `document.querySelector("#text").value.length > 0`)
	if kept := eval[string](t, b, `document.querySelector("#text").value`); kept != draft {
		t.Errorf("after the top-up the message box holds %q", kept)
	}
	if balance := eval[string](t, b, `document.querySelector("#cost").innerText`); !strings.Contains(balance, "$69.80") {
		t.Errorf("the balance after a $20 top-up: %q", balance)
	}

	// Sent, the draft is forgotten: the next visit starts empty.
	b.do(t, chromedp.Click(chromedp.CSS("#send")))
	d.waitFor("the message is sent", `location.search.includes("sent=1") && document.querySelector("#thread")`)
	d.open("en")
	if kept := eval[string](t, b, `document.querySelector("#text").value`); kept != "" {
		t.Errorf("after sending, the message box still holds %q", kept)
	}
}
