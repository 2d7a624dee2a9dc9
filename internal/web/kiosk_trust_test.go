package web_test

import (
	"context"
	"database/sql"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/ledger"
)

// moveTrust changes a resident's trust balance by cents, as a deposit (or the
// agency taking money out) would, in the server's own database.
func moveTrust(t *testing.T, w *world, residentID string, cents int64) {
	t.Helper()
	db := dbtest.Open(t, w.Env["KINLINK_DATABASE"])
	err := db.InTx(context.Background(), func(tx *sql.Tx) error {
		_, _, err := ledger.New(db).Post(context.Background(), tx, ledger.Transaction{Kind: "test.trust", IdempotencyKey: "test-trust:" + time.Now().String(),
			Entries: []ledger.Entry{{Account: ledger.Ref{Kind: ledger.Cards}, Amount: -cents}, {Account: ledger.ResidentOf(residentID), Amount: cents}},
			Card:    ledger.CardRef{Kind: ledger.CardCharge, ChargeID: "ch_test_trust"}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

var trustBox = regexp.MustCompile(`<input type="checkbox" name="from_trust" id="(reply|videogram)-from-trust"[^>]*>`)

// Where replies are priced and the family prepaid none, the kiosk offers the
// resident to pay from their trust money, with the price and the balance shown
// before sending, never ticked for them; a reply sent without the tick is not
// paid, one with it is; where the balance is short the kiosk says so plainly,
// offers nothing, and refuses a reply sent with the tick anyway.
func TestKioskOffersToPayARepliesStampsFromTrustMoney(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		path, fsp, admin := reviewWorld(t, w, "")
		contact := strings.Split(path, "/")[2]
		thread := "/kiosk/messages/" + contact
		videogramReplies(t, admin, true, "5") // 5 stamps of 10¢: $0.50
		kiosk := residentAtKiosk(t, w, fsp)
		_, page := fsp.get(t, "/facility/residents?q=A100")
		jose := regexp.MustCompile(`/facility/residents/([0-9a-f]+)/pin`).FindStringSubmatch(page)[1]

		// No trust money: said plainly, nothing to tick, no recorder.
		_, tp := kiosk.get(t, thread)
		if !strings.Contains(tp, "A reply costs $0.50, and your trust money ($0.00) does not cover it.") || trustBox.MatchString(tp) {
			t.Fatalf("without trust money:\n%s", tp)
		}
		if kioskVideoGramKey.MatchString(tp) {
			t.Errorf("the recorder is offered for a reply nobody can pay for:\n%s", tp)
		}

		moveTrust(t, w, jose, 1200)
		_, tp = kiosk.get(t, thread)
		boxes := trustBox.FindAllString(tp, -1)
		if len(boxes) == 0 || !strings.Contains(tp, "Pay $0.50 from my trust money (balance $12.00)") || strings.Contains(tp, "does not cover") {
			t.Fatalf("the choice to pay from trust money, with price and balance:\n%s", tp)
		}
		for _, b := range boxes {
			if strings.Contains(b, "checked") {
				t.Errorf("the kiosk ticked the resident's choice for them: %s", b)
			}
		}
		if strings.Contains(tp, "Record a VideoGram") && (!kioskVideoGramKey.MatchString(tp) || !strings.Contains(tp, `id="videogram-from-trust" data-consent`)) {
			t.Errorf("the VideoGram recorder with the choice:\n%s", tp)
		}

		// Sent without the tick: not paid, not sent, the text kept.
		key := sendKey.FindStringSubmatch(tp)[1]
		res, page := kiosk.post(t, thread, url.Values{"key": {key}, "text": {"Hola mamá, gracias"}})
		if res.StatusCode == http.StatusSeeOther || !strings.Contains(page, "has not paid for one") || !strings.Contains(page, "Hola mamá, gracias") ||
			!strings.Contains(page, "(balance $12.00)") {
			t.Fatalf("a reply sent without the choice: %d\n%s", res.StatusCode, page)
		}
		// Ticked: sent and paid, once however often it is sent.
		for range 2 {
			if res, page := kiosk.post(t, thread, url.Values{"key": {key}, "text": {"Hola mamá, gracias"}, "from_trust": {"on"}}); res.StatusCode != http.StatusSeeOther {
				t.Fatalf("a reply paid from trust: %d\n%s", res.StatusCode, page)
			}
		}
		_, tp = kiosk.get(t, thread)
		if strings.Count(tp, "Hola mamá, gracias") != 1 || !strings.Contains(tp, "Pay $0.50 from my trust money (balance $11.50)") {
			t.Fatalf("after the reply paid from trust:\n%s", tp)
		}

		// Short: said, nothing offered, and a tick sent anyway is refused.
		moveTrust(t, w, jose, -1130)
		_, tp = kiosk.get(t, thread)
		if !strings.Contains(tp, "A reply costs $0.50, and your trust money ($0.20) does not cover it.") || trustBox.MatchString(tp) {
			t.Fatalf("a short balance:\n%s", tp)
		}
		res, page = kiosk.post(t, thread, url.Values{"key": {sendKey.FindStringSubmatch(tp)[1]}, "text": {"Otra más"}, "from_trust": {"on"}})
		if res.StatusCode != http.StatusPaymentRequired || !strings.Contains(page, "Your trust money does not cover this.") || !strings.Contains(page, "Otra más") {
			t.Fatalf("a reply the trust money does not cover: %d\n%s", res.StatusCode, page)
		}
		if _, tp = kiosk.get(t, thread); strings.Contains(tp, `class="text" dir="auto">Otra más`) {
			t.Errorf("a reply the trust money does not cover was sent:\n%s", tp)
		}

		// In Spanish too.
		moveTrust(t, w, jose, 1000)
		kiosk.get(t, "/kiosk/lang?to=es&next="+thread)
		if _, tp = kiosk.get(t, thread); !strings.Contains(tp, "Pagar $0.50 con el dinero de mi cuenta (saldo $10.20)") {
			t.Errorf("the choice in Spanish:\n%s", tp)
		}
	})
}

// A VideoGram reply can be paid from trust money too: the recorder is offered
// with the choice (which its script asks for before uploading), a clip sent
// without it is not paid, one with it is, and review turning it back returns the
// money.
func TestKioskVideoGramReplyPaidFromTrustComesBackWhenRejected(t *testing.T) {
	clip := testClip(t)
	eachEngine(t, func(t *testing.T, w *world) {
		path, fsp, admin := reviewWorld(t, w, "")
		contact := strings.Split(path, "/")[2]
		thread := "/kiosk/messages/" + contact
		videogramReplies(t, admin, true, "5")
		kiosk := residentAtKiosk(t, w, fsp)
		_, page := fsp.get(t, "/facility/residents?q=A100")
		jose := regexp.MustCompile(`/facility/residents/([0-9a-f]+)/pin`).FindStringSubmatch(page)[1]

		_, tp := kiosk.get(t, thread)
		if !strings.Contains(tp, "Record a VideoGram") || kioskVideoGramKey.MatchString(tp) || !strings.Contains(tp, `id="videogram-trust-short"`) {
			t.Fatalf("without trust money, no recorder and the reason:\n%s", tp)
		}
		moveTrust(t, w, jose, 300)
		_, tp = kiosk.get(t, thread)
		if !kioskVideoGramKey.MatchString(tp) || !regexp.MustCompile(`id="videogram-from-trust" data-consent> Pay \$0.50 from my trust money \(balance \$3.00\)`).MatchString(tp) ||
			!strings.Contains(tp, `data-consent-first="To send it, first tick the box`) {
			t.Fatalf("the recorder with the choice to pay from trust:\n%s", tp)
		}
		key := kioskVideoGramKey.FindStringSubmatch(tp)[1]
		up := tusUpload(t, kiosk, "/kiosk/uploads/", clip)
		if res, page := kiosk.post(t, thread+"/videograms", url.Values{"key": {key}, "upload_id": {up}}); res.StatusCode == http.StatusSeeOther ||
			!strings.Contains(page, "has not paid for one") {
			t.Fatalf("a VideoGram reply sent without the choice: %d\n%s", res.StatusCode, page)
		}
		for range 2 {
			if res, page := kiosk.post(t, thread+"/videograms", url.Values{"key": {key}, "upload_id": {up}, "from_trust": {"on"}}); res.StatusCode != http.StatusSeeOther {
				t.Fatalf("a VideoGram reply paid from trust: %d\n%s", res.StatusCode, page)
			}
		}
		if _, tp = kiosk.get(t, thread); !strings.Contains(tp, "(balance $2.50)") {
			t.Fatalf("after the VideoGram reply paid from trust:\n%s", tp)
		}
		w.JobsSettled(t)
		_, tp = kiosk.get(t, thread)
		id := regexp.MustCompile(`/videograms/([0-9a-f]+)/video`).FindStringSubmatch(tp)[1]
		if res, page := fsp.post(t, "/facility/review/"+id, url.Values{"decision": {"reject"}, "reason": {"coded_language"}, "note": {"Hable claro"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("reject: %d\n%s", res.StatusCode, page)
		}
		if _, tp = kiosk.get(t, thread); !strings.Contains(tp, `state-rejected">Not sent`) || !strings.Contains(tp, "(balance $3.00)") {
			t.Fatalf("after the rejection the money is back:\n%s", tp)
		}
	})
}
