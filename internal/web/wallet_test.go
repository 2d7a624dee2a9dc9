package web_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/kinlink/kinlink/internal/database/dbtest"
)

func TestWalletPage(t *testing.T) {
	w := start(t, dbtest.Engines(t)[0].Setting)
	w.signUp(t, "ana@example.org")
	_, page := w.get(t, "/wallet")
	if !strings.Contains(page, "Test mode — no real money") || !strings.Contains(page, `id="balance">$0.00<`) {
		t.Fatalf("wallet page:\n%s", page)
	}
	key := regexp.MustCompile(`name="key" value="([0-9a-f]+)"`).FindStringSubmatch(page)[1]
	if res, page := w.post(t, "/wallet/top-ups", url.Values{"key": {key}, "amount": {"2"}, "card": {"tok_visa"}}); res.StatusCode != 400 || !strings.Contains(page, "from $5 to $500") {
		t.Errorf("$2: %d", res.StatusCode)
	}
	// An amount is dollars and cents as typed, never a rounding of something else.
	for _, typed := range []string{"10.005", "1e2", "5.0000001", "ten", "-20", "20.", ""} {
		if res, page := w.post(t, "/wallet/top-ups", url.Values{"key": {key}, "amount": {typed}, "card": {"tok_visa"}}); res.StatusCode != 400 ||
			!strings.Contains(page, "dollars and cents") || !strings.Contains(page, `value="`+typed+`"`) {
			t.Errorf("amount %q: %d", typed, res.StatusCode)
		}
	}
	// A form whose key no page of ours makes is refused plainly, keeping the amount.
	if res, page := w.post(t, "/wallet/top-ups", url.Values{"key": {strings.Repeat("k", 200)}, "amount": {"20"}, "card": {"tok_visa"}}); res.StatusCode != 400 ||
		!strings.Contains(page, "nothing was charged") || !strings.Contains(page, `value="20"`) {
		t.Errorf("a form with an overlong key: %d\n%s", res.StatusCode, page)
	}
	if res, page := w.post(t, "/wallet/top-ups", url.Values{"key": {key}, "amount": {"20"}, "card": {"tok_chargeDeclined"}}); res.StatusCode != 402 || !strings.Contains(page, "declined") || !strings.Contains(page, `value="20"`) {
		t.Errorf("declined: %d", res.StatusCode)
	}
	// A double submit of the same form adds the money once.
	for range 2 {
		if res, _ := w.post(t, "/wallet/top-ups", url.Values{"key": {key}, "amount": {"20.50"}, "card": {"tok_visa"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("top-up: %d", res.StatusCode)
		}
	}
	_, page = w.get(t, "/wallet?done=topup")
	if !strings.Contains(page, `id="balance">$20.50<`) || !strings.Contains(page, "+$20.50") {
		t.Fatalf("after top-up:\n%s", page)
	}
	// A decimal comma is read as Spanish speakers write it.
	key = regexp.MustCompile(`name="key" value="([0-9a-f]+)"`).FindStringSubmatch(page)[1]
	if res, _ := w.post(t, "/wallet/top-ups", url.Values{"key": {key}, "amount": {"$ 5,5"}, "card": {"tok_visa"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("top-up of 5,5: %d", res.StatusCode)
	}
	if _, page = w.get(t, "/wallet"); !strings.Contains(page, `id="balance">$26.00<`) {
		t.Errorf("5,5 was not read as $5.50")
	}
	// Every page says test mode while the sandbox takes payments.
	for _, path := range []string{"/help", "/people", "/account"} {
		if _, page := w.get(t, path); !strings.Contains(page, `id="test-mode"`) {
			t.Errorf("%s does not say test mode", path)
		}
	}
}
