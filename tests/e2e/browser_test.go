// Package e2e drives the real Kinlink in a real Chromium, as a person would.
//
// The tests need Debian's chromium (/usr/bin/chromium, or KINLINK_CHROMIUM) and
// axe-core from npm (`npm ci` in this folder, or KINLINK_AXE pointing at axe.min.js).
// Without them they skip and say why; with KINLINK_E2E=require they fail instead.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kinlink/kinlink/internal/apptest"
)

// missing skips the test, or fails it when KINLINK_E2E=require.
func missing(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("KINLINK_E2E") == "require" {
		t.Fatalf("KINLINK_E2E=require, but %s", why)
	}
	t.Skipf("skipping browser test: %s (install chromium and run npm ci in tests/e2e)", why)
}

// Browser is a headless Chromium tab and the axe-core source to check pages with.
type Browser struct {
	ctx context.Context
	axe string
}

func newBrowser(t *testing.T) *Browser {
	t.Helper()
	return newBrowserFor(t, 2*time.Minute)
}

// newBrowserFor is newBrowser for a test that needs longer than two minutes, such
// as one that waits for a kiosk's idle sign-out.
func newBrowserFor(t *testing.T, limit time.Duration) *Browser {
	t.Helper()
	return newBrowserWith(t, limit)
}

// newBrowserWith is newBrowserFor with more of Chromium's flags (a fake camera).
func newBrowserWith(t *testing.T, limit time.Duration, flags ...chromedp.ExecAllocatorOption) *Browser {
	t.Helper()
	exe := os.Getenv("KINLINK_CHROMIUM")
	if exe == "" {
		exe = "/usr/bin/chromium"
	}
	if _, err := os.Stat(exe); err != nil {
		missing(t, "no Chromium at "+exe)
	}
	axePath := os.Getenv("KINLINK_AXE")
	if axePath == "" {
		axePath = filepath.Join("node_modules", "axe-core", "axe.min.js")
	}
	axe, err := os.ReadFile(axePath)
	if err != nil {
		missing(t, "no axe-core at "+axePath)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // the tests run as root in CI
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	opts = append(opts, flags...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, limit)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return &Browser{ctx: ctx, axe: string(axe)}
}

// do runs browser steps in order and fails the test on the first error.
func (b *Browser) do(t *testing.T, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// eval evaluates JavaScript in the page and decodes its result.
func eval[T any](t *testing.T, b *Browser, expression string, opts ...chromedp.EvaluateOption) T {
	t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expression, opts...))
	if err != nil {
		t.Fatalf("evaluate %.60q: %v", expression, err)
	}
	return v
}

// Violation is one axe-core finding.
type Violation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

// checkAccessibility runs axe-core on the current page and fails on any violation.
func (b *Browser) checkAccessibility(t *testing.T, what string) {
	t.Helper()
	// Wait for the page to settle, then inject axe-core and run it in one script, so
	// that a navigation cannot slip between the two.
	b.do(t, chromedp.WaitReady(chromedp.CSS("body")))
	eval[bool](t, b, `new Promise(done => document.readyState === "complete" ? done(true) : addEventListener("load", () => done(true)))`, chromedp.EvalAwaitPromise)
	vs := eval[[]Violation](t, b, b.axe+`
;axe.run(document, {resultTypes: ["violations"]}).then(r => r.violations.map(v => ({
		id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(" "))})))`, chromedp.EvalAwaitPromise)
	for _, v := range vs {
		t.Errorf("%s: axe %s (%s): %s at %s", what, v.ID, v.Impact, v.Help, strings.Join(v.Nodes, ", "))
	}
}

// screenshot saves the page when KINLINK_E2E_SCREENSHOTS names a folder, for people
// to look at what the tests saw.
func (b *Browser) screenshot(t *testing.T, name string) {
	dir := os.Getenv("KINLINK_E2E_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644)
}

// Box is an element's place on screen.
type Box struct {
	Left, Top, Right, Bottom, ViewportWidth, ScrollWidth float64
	Visible                                              bool
	Text                                                 string
}

func (b *Browser) box(t *testing.T, selector string) Box {
	t.Helper()
	return eval[Box](t, b, fmt.Sprintf(`(() => {
		const el = document.querySelector(%q);
		if (!el) return {Visible: false};
		const r = el.getBoundingClientRect(), s = getComputedStyle(el);
		return {Left: r.left, Top: r.top, Right: r.right, Bottom: r.bottom,
			ViewportWidth: window.innerWidth, ScrollWidth: document.documentElement.scrollWidth,
			Visible: r.width > 0 && r.height > 0 && s.visibility !== "hidden" && s.display !== "none",
			Text: el.innerText.trim()};
	})()`, selector))
}

func startKinlink(t *testing.T) *apptest.Instance {
	return apptest.Start(t, "serve", "sqlite:"+filepath.Join(t.TempDir(), "kinlink.db"), nil)
}

// fits checks that the page does not scroll sideways (naming the widest elements
// if it does) and passes axe, and keeps a screenshot named after what.
func (b *Browser) fits(t *testing.T, what string) {
	t.Helper()
	if box := b.box(t, "body"); box.ScrollWidth > box.ViewportWidth {
		wide := eval[[]string](t, b, `[...document.querySelectorAll("body *")].filter((e) => e.getBoundingClientRect().right > innerWidth + 1 && !e.parentElement.closest(".table-wrap")).slice(0, 5).map((e) => e.tagName + "#" + e.id + "." + e.className + " " + Math.round(e.getBoundingClientRect().right))`)
		t.Errorf("%s scrolls sideways at %.0f px: %.0f px wide (%s)", what, box.ViewportWidth, box.ScrollWidth, strings.Join(wide, "; "))
	}
	b.checkAccessibility(t, what)
	b.screenshot(t, strings.ReplaceAll(what, " ", "-"))
}
