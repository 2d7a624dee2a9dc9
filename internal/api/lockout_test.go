package api_test

import (
	"fmt"
	"net/http"
	"testing"
)

// Issue 13, item 2: nobody can lock another person out. These run as an attacker
// would, over HTTP, from the same client address as the owner (a household, or a
// visiting centre's network).

// login posts a login and returns the status and body.
func (w *world) login(t *testing.T, email, password, device string) (int, map[string]any) {
	t.Helper()
	body := map[string]any{"email": email, "password": password}
	if device != "" {
		body["device_token"] = device
	}
	res, out := w.JSON(t, "POST", "/api/v1/login", body)
	return res.StatusCode, out
}

func TestOthersFailuresNeverLockAKnownDeviceOut(t *testing.T) {
	eachEngine(t, map[string]string{"KINLINK_LOGIN_MAX_PER_ADDRESS": "20"}, func(t *testing.T, w *world) {
		w.register(t, "ana@example.org")
		status, out := w.login(t, "ana@example.org", goodPassword, "")
		device, _ := out["device_token"].(string)
		if status != 200 || len(device) < 40 {
			t.Fatalf("login: %d %v", status, out)
		}
		// The attacker's own account gives a device token that is no good for Ana's.
		w.register(t, "mallory@example.org")
		_, out = w.login(t, "mallory@example.org", goodPassword, "")
		own := out["device_token"].(string)

		// Enough wrong passwords, from the owner's own address, to pause both the email
		// (for unknown devices) and the address.
		for i := range 25 {
			w.login(t, "ana@example.org", fmt.Sprintf("wrong guess number %d", i), own)
		}
		if status, out := w.login(t, "ana@example.org", goodPassword, own); status != http.StatusTooManyRequests {
			t.Fatalf("unknown device (another account's token) after 25 failures: %d %v", status, out)
		}
		if status, out := w.login(t, "ana@example.org", goodPassword, ""); status != http.StatusTooManyRequests {
			t.Fatalf("unknown device after 25 failures: %d %v", status, out)
		}
		// The owner's device is not paused by any of it.
		status, out = w.login(t, "ana@example.org", goodPassword, device)
		if status != 200 {
			t.Fatalf("the owner's known device after others' failures: %d %v", status, out)
		}
		if out["device_token"] != device {
			t.Errorf("a known device got a new token: %v", out["device_token"])
		}

		// A known device is limited on its own: ten wrong passwords pause it too.
		for i := range 10 {
			if status, _ := w.login(t, "ana@example.org", fmt.Sprintf("the owner mistyping %d", i), device); status != 401 {
				t.Fatalf("wrong password %d from the known device: %d", i, status)
			}
		}
		if status, _ := w.login(t, "ana@example.org", goodPassword, device); status != http.StatusTooManyRequests {
			t.Fatalf("a known device after ten of its own failures: %d", status)
		}
	})
}

// Another person's wrong codes never block the owner's own reset; guessing stays
// bounded per code.
func TestStrangersWrongCodesNeverBlockTheOwnersReset(t *testing.T) {
	eachEngine(t, nil, func(t *testing.T, w *world) {
		w.register(t, "ana@example.org")
		// The stranger asks for a reset of Ana's address and guesses at its code.
		w.JSON(t, "POST", "/api/v1/password/forgot", map[string]any{"email": "ana@example.org"})
		strangers := codeIn(t, w.mailTo(t, "ana@example.org", 2))
		wrong := "123456"
		if wrong == strangers {
			wrong = "654321"
		}
		for i := range 8 {
			res, body := w.JSON(t, "POST", "/api/v1/password/verify", map[string]any{"email": "ana@example.org", "code": wrong})
			if res.StatusCode != 400 || errCode(body) != "invalid_code" {
				t.Fatalf("wrong code %d: %d %s", i, res.StatusCode, res.Raw)
			}
		}
		// Ana asks for her own reset, and it works at once.
		res, _ := w.JSON(t, "POST", "/api/v1/password/forgot", map[string]any{"email": "ana@example.org"})
		if res.StatusCode != http.StatusAccepted {
			t.Fatalf("the owner's reset request after a stranger's wrong codes: %d %s", res.StatusCode, res.Raw)
		}
		code := codeIn(t, w.mailTo(t, "ana@example.org", 3))
		res, step := w.JSON(t, "POST", "/api/v1/password/verify", map[string]any{"email": "ana@example.org", "code": code})
		if res.StatusCode != 200 || step["reset_token"] == nil {
			t.Fatalf("the owner's code: %d %s", res.StatusCode, res.Raw)
		}
	})
}
