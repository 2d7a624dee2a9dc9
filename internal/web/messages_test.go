package web_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// approvedContact sets up FLDOC, José García (A100 at FSP), a family signed in on w,
// and an approved contact between them; it returns the contact id and the FSP
// admin's authenticator secret.
func approvedContact(t *testing.T, w *world, email string) (contactID, adminSecret string) {
	t.Helper()
	setupAgency(t, w)
	w.importRoster(t, roster)
	w.signUp(t, email)
	_, login := w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": email, "password": password})
	auth := []string{"Authorization", "Bearer " + login["token"].(string)}
	_, found := w.JSON(t, "GET", "/api/v1/residents?agency=FLDOC&resident_id=A100", nil, auth...)
	resident := found["residents"].([]any)[0].(map[string]any)
	_, c := w.JSON(t, "POST", "/api/v1/contacts", map[string]any{"resident": resident["id"]}, auth...)
	adminSecret = w.enrolStaff(t, "fsp.admin@example.org", "staff pass 42!", "--role", "facility_admin", "--facility", "FSP")
	staff := w.browser(t)
	staff.portalLogin(t, "fsp.admin@example.org", "staff pass 42!", adminSecret)
	if res, _ := staff.post(t, "/facility/contacts/"+c["id"].(string), url.Values{"decision": {"approve"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("approve contact: %d", res.StatusCode)
	}
	return c["id"].(string), adminSecret
}

var sendKey = regexp.MustCompile(`name="key" value="([0-9a-f]+)"`)

func (w *world) topUp(t *testing.T, dollars string) {
	t.Helper()
	_, page := w.get(t, "/wallet")
	key := sendKey.FindStringSubmatch(page)[1]
	if res, _ := w.post(t, "/wallet/top-ups", url.Values{"key": {key}, "amount": {dollars}, "card": {"tok_visa"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("top-up: %d", res.StatusCode)
	}
}

func TestFamilySendsAMessage(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		contact, _ := approvedContact(t, w, "ana@example.org")
		path := "/people/" + contact + "/messages"
		res, page := w.get(t, path)
		if res.StatusCode != 200 || !strings.Contains(page, "José García") || !strings.Contains(page, "No messages yet") {
			t.Fatalf("conversation page: %d\n%s", res.StatusCode, page)
		}
		key := sendKey.FindStringSubmatch(page)[1]

		// No money: the message is refused and what was typed stays.
		res, page = w.post(t, path, url.Values{"key": {key}, "text": {"Hola mijo, te quiero mucho."}})
		if res.StatusCode != http.StatusPaymentRequired || !strings.Contains(page, "not enough money") || !strings.Contains(page, "Hola mijo, te quiero mucho.") {
			t.Fatalf("send without money: %d", res.StatusCode)
		}
		if res, page := w.post(t, path, url.Values{"key": {key}, "text": {"   "}}); res.StatusCode != 400 || !strings.Contains(page, "Write something") {
			t.Errorf("empty message: %d", res.StatusCode)
		}
		long := strings.Repeat("palabra ", 1000)
		if res, page := w.post(t, path, url.Values{"key": {key}, "text": {long}}); res.StatusCode != 400 || !strings.Contains(page, "too long") || !strings.Contains(page, "palabra palabra") {
			t.Errorf("too long: %d", res.StatusCode)
		}

		w.topUp(t, "5")
		// A double submit sends once and takes one stamp.
		for range 2 {
			if res, _ := w.post(t, path, url.Values{"key": {key}, "text": {"Hola mijo, te quiero mucho."}}); res.StatusCode != http.StatusSeeOther {
				t.Fatalf("send: %d", res.StatusCode)
			}
		}
		_, page = w.get(t, path+"?sent=1")
		if strings.Count(page, "Hola mijo, te quiero mucho.") != 1 || !strings.Contains(page, "Delivered") || !strings.Contains(page, "Your message was sent") {
			t.Fatalf("after sending:\n%s", page)
		}
		_, wallet := w.get(t, "/wallet")
		if !strings.Contains(wallet, `id="balance">$4.`) {
			t.Errorf("one stamp was not taken once:\n%s", wallet)
		}

		// Another family cannot read or write this conversation.
		other := w.browser(t)
		other.signUp(t, "other@example.org")
		if res, page := other.get(t, path); res.StatusCode != 404 || strings.Contains(page, "Hola mijo") {
			t.Errorf("another family opened the conversation: %d", res.StatusCode)
		}
		if res, _ := other.post(t, path, url.Values{"key": {"k"}, "text": {"hi"}}); res.StatusCode != 404 {
			t.Errorf("another family wrote to the conversation: %d", res.StatusCode)
		}
		if out := w.operator(t, "ledger", "verify"); !strings.Contains(out, "ledger verified") {
			t.Errorf("ledger: %s", out)
		}
	})
}
