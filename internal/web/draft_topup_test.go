package web_test

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// Issue 13, item 20: "not enough money" leads to the wallet and back to the message,
// whose text the page keeps for the trip; the wallet says what a stamp costs.
func TestADraftSurvivesATopUp(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		contact, _ := approvedContact(t, w, "ana@example.org")
		path := "/people/" + contact + "/messages"
		res, page := w.sendWithPhotos(t, path, "Hola mijo, te extraño")
		if res.StatusCode != http.StatusPaymentRequired || !strings.Contains(page, "Hola mijo, te extraño") || !strings.Contains(page, `data-draft="draft:`+contact+`"`) {
			t.Fatalf("a send without money: %d", res.StatusCode)
		}
		link := regexp.MustCompile(`id="add-money" href="([^"]+)"`).FindStringSubmatch(page)
		if link == nil {
			t.Fatalf("no way to the wallet and back:\n%s", page)
		}
		res, wallet := w.get(t, html.UnescapeString(link[1]))
		if res.StatusCode != 200 || !strings.Contains(wallet, `name="back" value="`+path+`"`) || !strings.Contains(wallet, "One stamp costs $") ||
			!strings.Contains(wallet, `id="back-to-draft"`) {
			t.Fatalf("the wallet from a message: %d\n%s", res.StatusCode, wallet)
		}
		key := regexp.MustCompile(`name="key" value="([0-9a-f]+)"`).FindStringSubmatch(wallet)[1]
		res, _ = w.post(t, "/wallet/top-ups", url.Values{"key": {key}, "amount": {"10"}, "card": {"tok_visa"}, "back": {path + "#write"}})
		if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), path) {
			t.Errorf("a top-up from a message goes to %q", res.Header.Get("Location"))
		}
		// A back that is not one of the family's pages is not followed.
		_, wallet = w.get(t, "/wallet")
		key = regexp.MustCompile(`name="key" value="([0-9a-f]+)"`).FindStringSubmatch(wallet)[1]
		res, _ = w.post(t, "/wallet/top-ups", url.Values{"key": {key}, "amount": {"10"}, "card": {"tok_visa"}, "back": {"https://evil.example/"}})
		if loc := res.Header.Get("Location"); loc != "/wallet?done=topup" {
			t.Errorf("a foreign back was followed: %q", loc)
		}
	})
}
