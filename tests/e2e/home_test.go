package e2e

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// A newcomer opens the home page on a phone and on a desktop, finds Login at the top
// right, switches to Spanish, and finds the choice remembered; every page state
// passes axe-core.
func TestHomePageJourney(t *testing.T) {
	b := newBrowser(t)
	in := startKinlink(t)

	for _, size := range []struct {
		name          string
		width, height int64
	}{{"phone", 360, 740}, {"desktop", 1280, 800}} {
		t.Run(size.name, func(t *testing.T) {
			b.do(t,
				chromedp.EmulateViewport(size.width, size.height),
				chromedp.Navigate(in.URL+"/"),
				chromedp.WaitVisible(chromedp.CSS("#login")),
			)
			login := b.box(t, "#login")
			if !login.Visible || login.Text != "Login" {
				t.Fatalf("Login button: %+v", login)
			}
			if login.Top > 100 {
				t.Errorf("Login button is %.0f px from the top; it belongs in the header", login.Top)
			}
			if login.Right < login.ViewportWidth*0.8 || login.Right > login.ViewportWidth {
				t.Errorf("Login button ends at %.0f px of %.0f: not at the right", login.Right, login.ViewportWidth)
			}
			if login.ScrollWidth > login.ViewportWidth {
				t.Errorf("the page is %.0f px wide in a %.0f px window: it scrolls sideways", login.ScrollWidth, login.ViewportWidth)
			}
			if signup := b.box(t, `a[href="/signup"]`); !signup.Visible || signup.Text != "Create account" {
				t.Errorf("Create account link: %+v", signup)
			}
			b.screenshot(t, "home-en-"+size.name)
			b.checkAccessibility(t, "home page, English, "+size.name)
		})
	}

	t.Run("switch to Spanish and stay there", func(t *testing.T) {
		b.do(t,
			chromedp.EmulateViewport(360, 740),
			chromedp.Click(chromedp.CSS(`a[hreflang="es"]`)),
			chromedp.WaitVisible(chromedp.CSS(`html[lang="es"]`)),
		)
		if login := b.box(t, "#login"); login.Text != "Iniciar sesión" {
			t.Fatalf("after switching, the Login button reads %q", login.Text)
		}
		b.do(t,
			chromedp.Navigate(in.URL+"/help"),
			chromedp.WaitVisible(chromedp.CSS("#login")),
		)
		if lang := eval[string](t, b, `document.documentElement.lang`); lang != "es" {
			t.Fatalf("the next page is in %q: the choice was not remembered", lang)
		}
		b.screenshot(t, "help-es-phone")
		b.checkAccessibility(t, "help page, Spanish, phone")
		b.do(t, chromedp.Navigate(in.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#login")))
		b.screenshot(t, "home-es-phone")
		b.checkAccessibility(t, "home page, Spanish, phone")
	})

	t.Run("pages work with the keyboard: skip link first", func(t *testing.T) {
		b.do(t,
			chromedp.Navigate(in.URL+"/privacy"),
			chromedp.WaitVisible(chromedp.CSS("#login")),
			chromedp.KeyEvent("\t"),
		)
		if focused := eval[string](t, b, `document.activeElement.getAttribute("href")`); focused != "#main" {
			t.Errorf("first Tab focuses %q, want the skip link to #main", focused)
		}
		b.checkAccessibility(t, "privacy page")
	})
}
