package app_test

import (
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/kinlink/kinlink/internal/apptest"
	"github.com/kinlink/kinlink/internal/database/dbtest"
)

// eachEngine starts kinlink once per database engine.
func eachEngine(t *testing.T, env map[string]string, fn func(t *testing.T, in *apptest.Instance)) {
	for _, e := range dbtest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			fn(t, apptest.Start(t, "serve", e.Setting, env))
		})
	}
}

func TestPublicSite(t *testing.T) {
	eachEngine(t, nil, func(t *testing.T, in *apptest.Instance) {
		t.Run("home in English with Login and Create account", func(t *testing.T) {
			res := in.Get(t, "/")
			body := apptest.Body(t, res)
			if res.StatusCode != 200 {
				t.Fatalf("GET / = %d", res.StatusCode)
			}
			for _, want := range []string{`<html lang="en">`, `id="login" href="/login">Login</a>`, `href="/signup">Create account</a>`,
				"eMessages with photos", "Deposits", `href="/help"`, `href="/privacy"`, `rel="manifest"`} {
				if !strings.Contains(body, want) {
					t.Errorf("home page lacks %q", want)
				}
			}
			// Only what this server offers (internal/web/offered_services_test.go):
			// VideoGrams where ffmpeg is installed to convert them.
			for _, notYet := range []string{"Video visits"} {
				if strings.Contains(body, notYet) {
					t.Errorf("home page offers %q, which does not exist yet", notYet)
				}
			}
			_, ffmpeg := exec.LookPath("ffmpeg")
			_, ffprobe := exec.LookPath("ffprobe")
			if offered := ffmpeg == nil && ffprobe == nil; strings.Contains(body, "VideoGrams") != offered {
				t.Errorf("home page names VideoGrams: %v; ffmpeg found: %v", strings.Contains(body, "VideoGrams"), offered)
			}
			// Scripts only enhance (the CSP forbids inline ones); the page reads
			// and navigates without them.
			for _, tag := range strings.Split(body, "<script")[1:] {
				if open, _, _ := strings.Cut(tag, ">"); !strings.Contains(open, "src=") {
					t.Error("the home page has an inline script")
				}
			}
			if strings.Contains(body, "style=") {
				t.Error("the home page has inline style")
			}
		})
		t.Run("home in Spanish from Accept-Language", func(t *testing.T) {
			res := in.Get(t, "/", "Accept-Language", "es-MX,es;q=0.9")
			body := apptest.Body(t, res)
			if !strings.Contains(body, `<html lang="es">`) || !strings.Contains(body, ">Iniciar sesión</a>") || !strings.Contains(body, "eMensajes con fotos") {
				t.Errorf("Spanish home page:\n%s", body)
			}
			if res.Header.Get("Content-Language") != "es" || !strings.Contains(res.Header.Get("Vary"), "Accept-Language") {
				t.Errorf("headers: Content-Language %q, Vary %q", res.Header.Get("Content-Language"), res.Header.Get("Vary"))
			}
		})
		t.Run("help and privacy in both languages", func(t *testing.T) {
			for path, want := range map[string][2]string{
				"/help":    {"How do I find my person?", "¿Cómo encuentro a mi ser querido?"},
				"/privacy": {"What we never do", "Lo que nunca hacemos"},
			} {
				if b := apptest.Body(t, in.Get(t, path, "Accept-Language", "en")); !strings.Contains(b, want[0]) {
					t.Errorf("%s in English lacks %q", path, want[0])
				}
				if b := apptest.Body(t, in.Get(t, path, "Accept-Language", "es")); !strings.Contains(b, want[1]) {
					t.Errorf("%s in Spanish lacks %q", path, want[1])
				}
			}
		})
		t.Run("unknown page is a localized 404", func(t *testing.T) {
			res := in.Get(t, "/no/such/page", "Accept-Language", "es")
			if b := apptest.Body(t, res); res.StatusCode != 404 || !strings.Contains(b, "No encontramos la página") {
				t.Errorf("404 page: %d\n%s", res.StatusCode, b)
			}
		})
		t.Run("manifest and icons for installing on a phone", func(t *testing.T) {
			res := in.Get(t, "/manifest.webmanifest")
			b := apptest.Body(t, res)
			if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/manifest+json" || !strings.Contains(b, `"sizes": "512x512"`) {
				t.Fatalf("manifest: %d %q\n%s", res.StatusCode, res.Header.Get("Content-Type"), b)
			}
			for _, icon := range []string{"/static/icon-192.png", "/static/icon-512.png", "/static/icon-maskable-512.png"} {
				res := in.Get(t, icon)
				apptest.Body(t, res)
				if res.StatusCode != 200 || res.Header.Get("Content-Type") != "image/png" {
					t.Errorf("%s: %d %s", icon, res.StatusCode, res.Header.Get("Content-Type"))
				}
			}
		})
	})
}

func TestLanguageSwitchIsRememberedAndStaysOnSite(t *testing.T) {
	eachEngine(t, nil, func(t *testing.T, in *apptest.Instance) {
		res := in.Get(t, "/lang?to=es&next=/help")
		apptest.Body(t, res)
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/help" {
			t.Fatalf("switch: %d to %q", res.StatusCode, res.Header.Get("Location"))
		}
		// The cookie jar now holds the choice; it wins over the browser's language.
		if b := apptest.Body(t, in.Get(t, "/", "Accept-Language", "en-US")); !strings.Contains(b, `<html lang="es">`) {
			t.Error("the chosen language was not remembered")
		}
		for _, next := range []string{"//evil.example/", "https://evil.example/", "/\\evil.example", "/./%5Cevil.example", "/./\\evil.example", "javascript:alert(1)"} {
			res := in.Get(t, "/lang?to=en&next="+next)
			apptest.Body(t, res)
			if loc := res.Header.Get("Location"); loc != "/" {
				t.Errorf("next=%s redirected to %q, want /", next, loc)
			}
		}
	})
}

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	eachEngine(t, nil, func(t *testing.T, in *apptest.Instance) {
		for _, path := range []string{"/", "/help", "/nope", "/static/kinlink.css", "/healthz"} {
			res := in.Get(t, path)
			apptest.Body(t, res)
			csp := res.Header.Get("Content-Security-Policy")
			if csp == "" || strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") || !strings.Contains(csp, "frame-ancestors 'none'") ||
				strings.Contains(csp, "stripe") {
				t.Errorf("%s: CSP %q", path, csp)
			}
			if res.Header.Get("X-Content-Type-Options") != "nosniff" || res.Header.Get("Referrer-Policy") == "" || res.Header.Get("X-Request-Id") == "" {
				t.Errorf("%s: headers %v", path, res.Header)
			}
			if res.Header.Get("Strict-Transport-Security") != "" {
				t.Errorf("%s: HSTS sent over plain HTTP", path)
			}
		}
	})
}

func TestHSTSWhenReachedOverHTTPS(t *testing.T) {
	in := apptest.Start(t, "serve", dbtest.Engines(t)[0].Setting, map[string]string{"KINLINK_BASE_URL": "https://kinlink.example.org"})
	res := in.Get(t, "/")
	apptest.Body(t, res)
	if !strings.Contains(res.Header.Get("Strict-Transport-Security"), "max-age=") {
		t.Fatalf("no HSTS with an https base URL: %v", res.Header)
	}
}

// With Stripe as the processor, pages may load Stripe.js and its frames and reach
// its API (the card field), still without inline script; with the sandbox they may
// not (TestSecurityHeadersOnEveryResponse).
func TestStripeInTheCSP(t *testing.T) {
	in := apptest.Start(t, "serve", dbtest.Engines(t)[0].Setting, map[string]string{
		"KINLINK_PAYMENT_PROCESSOR": "stripe", "KINLINK_STRIPE_SECRET_KEY": "sk_test_0123456789abcdef",
		"KINLINK_STRIPE_PUBLISHABLE_KEY": "pk_test_0123456789abcdef", "KINLINK_STRIPE_WEBHOOK_SECRET": "whsec_0123456789abcdef",
		"KINLINK_STRIPE_API_URL": "http://127.0.0.1:9", // never asked: no card is charged here
	})
	for _, path := range []string{"/", "/wallet"} {
		res := in.Get(t, path)
		apptest.Body(t, res)
		csp := res.Header.Get("Content-Security-Policy")
		for _, want := range []string{"script-src 'self' https://js.stripe.com https://*.js.stripe.com;", "connect-src 'self' https://api.stripe.com;",
			"frame-src 'self' https://js.stripe.com https://*.js.stripe.com https://hooks.stripe.com;", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-") {
			t.Errorf("%s: CSP %q", path, csp)
		}
	}
}

func TestCrossOriginStateChangesAreRefused(t *testing.T) {
	eachEngine(t, nil, func(t *testing.T, in *apptest.Instance) {
		res := in.Do(t, "POST", "/lang", strings.NewReader("to=es"), "Sec-Fetch-Site", "cross-site", "Content-Type", "application/x-www-form-urlencoded")
		if b := apptest.Body(t, res); res.StatusCode != http.StatusForbidden || !strings.Contains(b, "another site") {
			t.Errorf("cross-site POST: %d\n%s", res.StatusCode, b)
		}
		res = in.Do(t, "POST", "/lang", strings.NewReader("to=es"), "Origin", "https://evil.example", "Content-Type", "application/x-www-form-urlencoded")
		if apptest.Body(t, res); res.StatusCode != http.StatusForbidden {
			t.Errorf("POST with a foreign Origin: %d", res.StatusCode)
		}
		res = in.Do(t, "POST", "/lang", strings.NewReader("to=es"), "Sec-Fetch-Site", "same-origin", "Content-Type", "application/x-www-form-urlencoded")
		if apptest.Body(t, res); res.StatusCode == http.StatusForbidden {
			t.Errorf("same-origin POST was refused")
		}
	})
}

func TestOversizedBodyIsRefused(t *testing.T) {
	in := apptest.Start(t, "serve", dbtest.Engines(t)[0].Setting, nil)
	res := in.Do(t, "POST", "/", strings.NewReader(strings.Repeat("x", 2<<20)), "Content-Type", "application/octet-stream")
	if apptest.Body(t, res); res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("2 MiB body: %d", res.StatusCode)
	}
}

func TestHealthReadinessAndMetrics(t *testing.T) {
	eachEngine(t, nil, func(t *testing.T, in *apptest.Instance) {
		for _, path := range []string{"/healthz", "/readyz"} {
			res := in.Get(t, path)
			if b := apptest.Body(t, res); res.StatusCode != 200 {
				t.Errorf("%s = %d %s", path, res.StatusCode, b)
			}
		}
		apptest.Body(t, in.Get(t, "/help"))
		// Metrics are not on the public listener (issue 13, item 8): they say how
		// busy the server is and what fails, for the operator's monitoring only.
		if res := in.Get(t, "/metrics"); res.StatusCode != http.StatusNotFound || strings.Contains(apptest.Body(t, res), "go_goroutines") {
			t.Errorf("/metrics on the public listener: %d", res.StatusCode)
		}
		res, err := http.Get(in.MetricsURL)
		if err != nil {
			t.Fatalf("metrics listener: %v", err)
		}
		b := apptest.Body(t, res)
		for _, want := range []string{`kinlink_http_requests_total{code="200",method="GET",route="GET /help"}`, `kinlink_jobs{state="failed"} 0`, "go_goroutines", "process_resident_memory_bytes"} {
			if !strings.Contains(b, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
		// The database pools' statistics: on SQLite the one writer is a pool of its
		// own, so an operator sees how long requests queue for it.
		pools := []string{`go_sql_wait_duration_seconds_total{db_name="main"}`}
		if strings.HasPrefix(in.Env["KINLINK_DATABASE"], "sqlite:") {
			pools = []string{`go_sql_max_open_connections{db_name="write"} 1`, `go_sql_wait_duration_seconds_total{db_name="write"}`, `go_sql_in_use_connections{db_name="read"}`}
		}
		for _, want := range pools {
			if !strings.Contains(b, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})
}
