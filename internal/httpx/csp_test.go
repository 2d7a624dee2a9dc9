package httpx_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kinlink/kinlink/internal/httpx"
)

// cspOf is the Content-Security-Policy a response carries under SecurityHeaders.
func cspOf(t *testing.T, csp httpx.CSP) map[string]string {
	t.Helper()
	h := httpx.SecurityHeaders(false, csp)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/wallet", nil))
	header := rec.Header().Get("Content-Security-Policy")
	directives := map[string]string{}
	for _, d := range strings.Split(header, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		if _, twice := directives[name]; twice {
			t.Errorf("directive %s twice in %q", name, header)
		}
		directives[name] = value
	}
	return directives
}

// Without Stripe the policy is the strict one: the server's own, nothing else.
func TestCSPWithoutStripe(t *testing.T) {
	if got := (httpx.CSP{}).Policy(); got != httpx.ContentSecurityPolicy {
		t.Errorf("the zero CSP: %q", got)
	}
	d := cspOf(t, httpx.CSP{})
	for name, value := range d {
		if strings.Contains(value, "stripe") || strings.Contains(value, "https:") {
			t.Errorf("%s allows another host: %q", name, value)
		}
	}
	if _, ok := d["frame-src"]; ok {
		t.Errorf("frame-src without Stripe: %q", d["frame-src"])
	}
}

// With Stripe, pages may load Stripe.js and its frames and reach its API, and
// nothing else changes.
func TestCSPWithStripe(t *testing.T) {
	strict, d := cspOf(t, httpx.CSP{}), cspOf(t, httpx.CSP{Stripe: true})
	for name, want := range map[string]string{
		"script-src":  "'self' https://js.stripe.com https://*.js.stripe.com",
		"frame-src":   "'self' https://js.stripe.com https://*.js.stripe.com https://hooks.stripe.com",
		"connect-src": "'self' https://api.stripe.com",
	} {
		if d[name] != want {
			t.Errorf("%s: %q, want %q", name, d[name], want)
		}
	}
	for name, value := range strict {
		if name != "script-src" && name != "connect-src" && d[name] != value {
			t.Errorf("%s changed: %q, was %q", name, d[name], value)
		}
	}
	if len(d) != len(strict)+1 {
		t.Errorf("directives: %v, strict %v", d, strict)
	}
	for name, value := range d {
		if strings.Contains(value, "unsafe-") || strings.Contains(value, "*.stripe.com") || strings.Contains(value, " * ") || value == "*" {
			t.Errorf("%s is loose: %q", name, value)
		}
	}
	if d["frame-ancestors"] != "'none'" || d["object-src"] != "'none'" || d["style-src"] != "'self'" {
		t.Errorf("the rest: %v", d)
	}
}
