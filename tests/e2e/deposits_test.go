package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/kinlink/kinlink/internal/apptest"
)

// Issue 16, on the demo: María sends José $20 from her phone (360 px) with the
// sandbox card, and sees the fee ($0.00) and the total before paying; the pages
// pass axe and fit in English and Spanish. José sees the money and who sent it at
// the kiosk. The agency's finance officer finds it in the portal's deposits and
// the day's report, whose totals match the ledger, makes a feed key, and the
// agency's trust system (an HTTP client here) reads the deposit from the feed with
// it.
func TestDepositJourney(t *testing.T) {
	b := newBrowserFor(t, 3*time.Minute)
	in := apptest.Start(t, "demo", "sqlite:"+t.TempDir()+"/kinlink.db", nil)
	guide := in.WaitStdout(t, "Stop with Ctrl+C")
	kioskCode := regexp.MustCompile(`with code (\S+)`).FindStringSubmatch(guide)[1]
	kiosk, finance := b.context(t), b.context(t)
	text := func(x *Browser, sel string) string {
		t.Helper()
		return eval[string](t, x, fmt.Sprintf(`(document.querySelector(%q) || {innerText: ""}).innerText`, sel))
	}
	fits := func(x *Browser, what string) { t.Helper(); x.fits(t, what) }

	// María, on her phone: Send money from her people, in Spanish first.
	b.do(t, chromedp.EmulateViewport(360, 740), chromedp.Navigate(in.URL+"/login"), at("#login-submit"),
		chromedp.SendKeys(chromedp.CSS("#email"), "maria@example.org"), chromedp.SendKeys(chromedp.CSS("#password"), "kinlink demo family 2026"),
		chromedp.Click(chromedp.CSS("#login-submit")), chromedp.WaitNotPresent(chromedp.CSS("#login-submit")))
	for _, lang := range []string{"es", "en"} {
		b.do(t, chromedp.Navigate(in.URL+"/lang?to="+lang+"&next=/people"), at(`html[lang="`+lang+`"] a.send-money`),
			chromedp.Click(chromedp.CSS("a.send-money")), at("#deposit-continue"))
		fits(b, "deposit form "+lang)
		eval[bool](t, b, `(document.querySelector("#amount").value = "", document.querySelector("#sender_address").value = "", true)`)
		b.do(t, chromedp.SendKeys(chromedp.CSS("#amount"), "20"), chromedp.SendKeys(chromedp.CSS("#sender_address"), "4 Elm Street, Austin, TX 78701"),
			chromedp.Click(chromedp.CSS("#deposit-continue")), at("#deposit-pay"))
		// The fee and the total, before the card.
		if fee, total := text(b, "#deposit-fee"), text(b, "#deposit-total"); fee != "$0.00" || total != "$20.00" {
			t.Errorf("%s: the confirmation shows fee %q and total %q", lang, fee, total)
		}
		fits(b, "deposit confirmation "+lang)
		// A card whose bank asks for 3-D Secure: said so, the confirmation kept.
		b.do(t, chromedp.SetValue(chromedp.CSS("#card"), "tok_threeDSecure2Required"), chromedp.Click(chromedp.CSS("#deposit-pay")), at("#form-message"))
		if msg := text(b, "#form-message"); !strings.Contains(msg, "3-D Secure") || text(b, "#deposit-total") != "$20.00" {
			t.Errorf("%s: a card that needs its bank's confirmation: %q", lang, msg)
		}
		fits(b, "deposit card needs its bank "+lang)
		b.do(t, chromedp.SetValue(chromedp.CSS("#card"), "tok_visa"))
	}
	b.do(t, chromedp.Click(chromedp.CSS("#deposit-pay")), at("#deposit-state"))
	confirmation := text(b, "#deposit-confirmation")
	if !regexp.MustCompile(`^KL-[0-9A-Z]{4}-[0-9A-Z]{4}$`).MatchString(confirmation) || !strings.Contains(text(b, "#deposit-state"), "Posted") {
		t.Fatalf("after paying: %q, %q", confirmation, text(b, "#deposit-state"))
	}
	fits(b, "deposit sent en")
	b.do(t, chromedp.Navigate(in.URL+"/lang?to=es&next="+eval[string](t, b, `location.pathname`)), at(`html[lang="es"] #deposit-state`))
	fits(b, "deposit sent es")
	// Her money sent, and her wallet with its refund, in both languages.
	for _, lang := range []string{"es", "en"} {
		b.do(t, chromedp.Navigate(in.URL+"/lang?to="+lang+"&next=/deposits"), at(`html[lang="`+lang+`"] #deposits`))
		if got := text(b, "#deposits"); !strings.Contains(got, confirmation) {
			t.Errorf("money sent in %s lacks the deposit: %q", lang, got)
		}
		fits(b, "money sent "+lang)
		b.do(t, chromedp.Navigate(in.URL+"/wallet"), at("#refund-submit"))
		fits(b, "wallet with its refund "+lang)
	}

	// José at the kiosk, in Spanish.
	kiosk.do(t, chromedp.EmulateViewport(360, 740, chromedp.EmulatePortrait, chromedp.EmulateTouch),
		chromedp.Navigate(in.URL+"/kiosk"), at("#kiosk-enrol-submit"),
		chromedp.SendKeys(chromedp.CSS("#code"), kioskCode), chromedp.Click(chromedp.CSS("#kiosk-enrol-submit")), at("#kiosk-login-submit"),
		chromedp.SendKeys(chromedp.CSS("#resident_id"), "D1001"), chromedp.SendKeys(chromedp.CSS("#pin"), "4826"),
		chromedp.Click(chromedp.CSS("#kiosk-login-submit")), at("#kiosk-money"),
		chromedp.Navigate(in.URL+"/kiosk/lang?to=es&next=/kiosk"), at(`html[lang="es"] #kiosk-money`))
	kiosk.tap(t, "#kiosk-money")
	kiosk.do(t, at("#trust-balance"))
	if got := text(kiosk, "#trust-received"); !strings.Contains(got, "$20.00") || !strings.Contains(got, "María") {
		t.Errorf("the kiosk's deposits: %q", got)
	}
	fits(kiosk, "kiosk trust es")

	// The finance officer: the deposit, the day's report, a feed key.
	finance.do(t, chromedp.EmulateViewport(360, 740), chromedp.Navigate(in.URL+"/facility"), at("#portal-login-submit"),
		chromedp.SendKeys(chromedp.CSS("#email"), "finance@example.org"), chromedp.SendKeys(chromedp.CSS("#password"), "demo staff 2026"),
		chromedp.Click(chromedp.CSS("#portal-login-submit")), at("#portal-code-submit"))
	code, _ := totp.GenerateCode("KINLINKDEMOFINANCE222222", time.Now())
	finance.do(t, chromedp.SendKeys(chromedp.CSS("#code"), code), chromedp.Click(chromedp.CSS("#portal-code-submit")), at("#deposits-link"),
		chromedp.Click(chromedp.CSS("#deposits-link")), at("#deposits"))
	if got := text(finance, "#deposits"); !strings.Contains(got, confirmation) || !strings.Contains(got, "$20.00") {
		t.Errorf("the portal's deposits lack %s: %q", confirmation, got)
	}
	fits(finance, "portal deposits en")
	finance.do(t, chromedp.Click(chromedp.CSS(`#deposits a[id^="open-"]`)), at("#facts-title"))
	fits(finance, "portal deposit en")
	finance.do(t, chromedp.Navigate(in.URL+"/facility/deposits/released"), at("#deposits-released-link"))
	fits(finance, "portal released balances en")
	finance.do(t, chromedp.Navigate(in.URL+"/facility/deposits/report"), at("#report-totals"))
	if got := text(finance, "#report-rows"); !strings.Contains(got, confirmation) {
		t.Errorf("the day's report lacks the deposit: %q", got)
	}
	if text(finance, "#report-matches") == "" || text(finance, "#report-trust") != "$20.00" {
		t.Errorf("the report's totals: trust %q, matches %q", text(finance, "#report-trust"), text(finance, "#report-matches"))
	}
	fits(finance, "portal deposit report en")
	finance.do(t, chromedp.Navigate(in.URL+"/lang?to=es&next=/facility/deposits/report"), at(`html[lang="es"] #report-totals`))
	fits(finance, "portal deposit report es")
	finance.do(t, chromedp.Navigate(in.URL+"/facility/deposits"), at("#deposits"))
	fits(finance, "portal deposits es")
	finance.do(t, chromedp.Navigate(in.URL+"/facility/deposits/feed-keys"), at("#key-create"),
		chromedp.SendKeys(chromedp.CSS("#name"), "Sistema de fondos"), chromedp.Click(chromedp.CSS("#key-create")), at("#new-key"))
	key := text(finance, "#new-key")
	fits(finance, "portal feed key es")

	// The agency administrator's deposit settings, in both languages.
	admin := b.context(t)
	admin.do(t, chromedp.EmulateViewport(360, 740), chromedp.Navigate(in.URL+"/facility"), at("#portal-login-submit"),
		chromedp.SendKeys(chromedp.CSS("#email"), "agency.admin@example.org"), chromedp.SendKeys(chromedp.CSS("#password"), "demo staff 2026"),
		chromedp.Click(chromedp.CSS("#portal-login-submit")), at("#portal-code-submit"))
	adminCode, _ := totp.GenerateCode("KINLINKDEMOAGENCYADMIN22", time.Now())
	admin.do(t, chromedp.SendKeys(chromedp.CSS("#code"), adminCode), chromedp.Click(chromedp.CSS("#portal-code-submit")), at("#portal-logout"))
	for _, lang := range []string{"en", "es"} {
		admin.do(t, chromedp.Navigate(in.URL+"/lang?to="+lang+"&next=/facility/deposits/settings"), at(`html[lang="`+lang+`"] #policy-form`))
		fits(admin, "portal deposit settings "+lang)
	}

	// The trust system polls the feed with the key.
	req, _ := http.NewRequest("GET", in.URL+"/api/v1/agency/deposits?since=", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var feed struct {
		Entries []struct {
			Kind         string `json:"kind"`
			Confirmation string `json:"confirmation"`
			ResidentID   string `json:"resident_id"`
			AmountCents  int64  `json:"amount_cents"`
			Sender       struct {
				Name    string `json:"name"`
				Address string `json:"address"`
			} `json:"sender"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(body, &feed); err != nil || res.StatusCode != 200 {
		t.Fatalf("the feed: %d %s", res.StatusCode, body)
	}
	found := false
	for _, e := range feed.Entries {
		if e.Confirmation == confirmation {
			found = e.Kind == "posted" && e.AmountCents == 2000 && e.ResidentID == "D1001" && e.Sender.Address == "4 Elm Street, Austin, TX 78701"
		}
	}
	if !found {
		t.Errorf("the feed lacks the deposit as sent: %s", body)
	}
}
