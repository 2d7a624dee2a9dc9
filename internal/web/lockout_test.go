package web_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Issue 13, item 2: nobody can lock another person out. These run as an attacker
// would, from another browser on the same client address as the owner.

const deviceCookie = "__Host-kinlink_device"

func TestOthersFailuresNeverLockAKnownBrowserOut(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		w.signUp(t, "ana@example.org")
		// A login hands the browser a device cookie; so did the sign-up.
		if w.Cookie(deviceCookie) == "" {
			t.Fatal("no device cookie after the sign-up")
		}
		w.post(t, "/logout", nil)
		res, _ := w.post(t, "/login", url.Values{"email": {"ana@example.org"}, "password": {password}})
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("login: %d", res.StatusCode)
		}
		var set string
		for _, c := range res.Header.Values("Set-Cookie") {
			if strings.HasPrefix(c, deviceCookie+"=") {
				set = c
			}
		}
		for _, want := range []string{"Path=/", "Secure", "HttpOnly", "SameSite=Lax"} {
			if !strings.Contains(set, want) {
				t.Errorf("device cookie %q lacks %s", set, want)
			}
		}

		attacker := w.browser(t)
		for i := range 12 {
			attacker.post(t, "/login", url.Values{"email": {"ana@example.org"}, "password": {fmt.Sprintf("wrong guess number %d", i)}})
		}
		if res, _ := attacker.post(t, "/login", url.Values{"email": {"ana@example.org"}, "password": {password}}); res.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("the attacker's browser after 12 failures: %d", res.StatusCode)
		}
		// The owner's browser gets in all the same.
		w.post(t, "/logout", nil)
		res, page := w.post(t, "/login", url.Values{"email": {"ana@example.org"}, "password": {password}})
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/people" {
			t.Fatalf("the owner's known browser after others' failures: %d %s\n%s", res.StatusCode, res.Header.Get("Location"), page)
		}
		// On a browser she never used, she is asked to wait minutes, not days.
		fresh := w.browser(t)
		res, _ = fresh.post(t, "/login", url.Values{"email": {"ana@example.org"}, "password": {password}})
		wait, _ := strconv.Atoi(res.Header.Get("Retry-After"))
		if res.StatusCode != http.StatusTooManyRequests || wait < 1 || wait > int((15*time.Minute).Seconds()) {
			t.Fatalf("a new browser during the pause: %d, Retry-After %q", res.StatusCode, res.Header.Get("Retry-After"))
		}
	})
}

func TestOthersFailuresNeverLockAStaffBrowserOut(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		setupAgency(t, w)
		secret := w.enrolStaff(t, "ana.ruiz@example.org", "staff pass 42!", "--role", "agency_admin")
		if res := w.portalLogin(t, "ana.ruiz@example.org", "staff pass 42!", secret); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("portal login: %d", res.StatusCode)
		}
		attacker := w.browser(t)
		for i := range 12 {
			attacker.post(t, "/facility/login", url.Values{"email": {"ana.ruiz@example.org"}, "password": {fmt.Sprintf("wrong staff guess %d", i)}})
		}
		if res, _ := attacker.post(t, "/facility/login", url.Values{"email": {"ana.ruiz@example.org"}, "password": {"staff pass 42!"}}); res.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("the attacker's browser after 12 failures: %d", res.StatusCode)
		}
		// The staff member's own browser still reaches the second-factor step.
		res, _ := w.post(t, "/facility/login", url.Values{"email": {"ana.ruiz@example.org"}, "password": {"staff pass 42!"}})
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/facility/code" {
			t.Fatalf("the staff member's known browser after others' failures: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
	})
}

var resetLink = regexp.MustCompile(`https://kinlink.example.org/password/verify\?t=([A-Za-z0-9_-]+)`)

func TestStrangersWrongCodesNeverBlockTheOwnersReset(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		w.signUp(t, "ana@example.org")
		w.post(t, "/logout", nil)
		if res, _ := w.post(t, "/password/forgot", url.Values{"email": {"ana@example.org"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("forgot: %d", res.StatusCode)
		}
		m := w.lastMailTo(t, "ana@example.org", 2)
		link := resetLink.FindStringSubmatch(m.Text)
		if link == nil {
			t.Fatalf("no link in the reset mail:\n%s", m.Text)
		}
		right := code(t, m)
		wrong := "123456"
		if wrong == right {
			wrong = "654321"
		}
		stranger := w.browser(t)
		for i := range 6 {
			if res, _ := stranger.post(t, "/password/verify", url.Values{"email": {"ana@example.org"}, "code": {wrong}}); res.StatusCode != http.StatusBadRequest {
				t.Fatalf("wrong code %d: %d", i, res.StatusCode)
			}
		}
		// Guessing stays bounded: the code the stranger guessed at is spent...
		if res, _ := stranger.post(t, "/password/verify", url.Values{"email": {"ana@example.org"}, "code": {right}}); res.StatusCode != http.StatusBadRequest {
			t.Fatalf("the right code after 6 wrong ones: %d", res.StatusCode)
		}
		// ...but the owner's link in the same mail still works,
		res, _ := w.post(t, "/password/verify", url.Values{"t": {link[1]}})
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/password/question" {
			t.Fatalf("the owner's link after a stranger's wrong codes: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		// and a new request gives her a code that works at once.
		if res, page := w.post(t, "/password/forgot", url.Values{"email": {"ana@example.org"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("the owner's new reset request: %d\n%s", res.StatusCode, page)
		}
		fresh := code(t, w.lastMailTo(t, "ana@example.org", 3))
		res, _ = w.post(t, "/password/verify", url.Values{"email": {"ana@example.org"}, "code": {fresh}})
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/password/question" {
			t.Fatalf("the owner's new code: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
	})
}
