package api_test

import (
	"strings"
	"testing"
)

func TestWalletTopUps(t *testing.T) {
	eachEngine(t, nil, func(t *testing.T, w *world) {
		token := w.register(t, "ana@example.org")
		auth := bearer(token)
		res, body := w.JSON(t, "GET", "/api/v1/wallet", nil, auth...)
		if res.StatusCode != 200 || body["balance_cents"] != float64(0) || body["currency"] != "USD" || body["test_mode"] != true {
			t.Fatalf("empty wallet: %d %s", res.StatusCode, res.Raw)
		}
		res, body = w.JSON(t, "POST", "/api/v1/wallet/top-ups", map[string]any{"amount_cents": 2500, "payment_token": "tok_chargeDeclined"}, append(auth, "Idempotency-Key", "a")...)
		if res.StatusCode != 402 || errCode(body) != "payment_declined" {
			t.Fatalf("declined: %d %s", res.StatusCode, res.Raw)
		}
		res, body = w.JSON(t, "POST", "/api/v1/wallet/top-ups", map[string]any{"amount_cents": 2500, "payment_token": "tok_chargeDeclinedProcessingError"}, append(auth, "Idempotency-Key", "b")...)
		if res.StatusCode != 502 || errCode(body) != "payment_processor_error" {
			t.Fatalf("processor error: %d %s", res.StatusCode, res.Raw)
		}
		if res, _ := w.JSON(t, "POST", "/api/v1/wallet/top-ups", map[string]any{"amount_cents": 99, "payment_token": "tok_visa"}, auth...); res.StatusCode != 400 {
			t.Errorf("99 cents: %d", res.StatusCode)
		}
		res, first := w.JSON(t, "POST", "/api/v1/wallet/top-ups", map[string]any{"amount_cents": 2500, "payment_token": "tok_visa"}, append(auth, "Idempotency-Key", "c")...)
		if res.StatusCode != 201 || first["balance_cents"] != float64(2500) || first["fee_cents"] != float64(0) {
			t.Fatalf("top-up: %d %s", res.StatusCode, res.Raw)
		}
		res, again := w.JSON(t, "POST", "/api/v1/wallet/top-ups", map[string]any{"amount_cents": 2500, "payment_token": "tok_visa"}, append(auth, "Idempotency-Key", "c")...)
		if res.StatusCode != 200 || again["id"] != first["id"] || again["balance_cents"] != float64(2500) {
			t.Fatalf("the retried top-up: %d %s", res.StatusCode, res.Raw)
		}
		// A retry that carries another card token (an app that asked again) is still
		// the top-up that went through: the processor is not asked, so it cannot
		// answer "declined" for money already added.
		for _, token := range []string{"tok_chargeDeclined", "tok_chargeDeclinedProcessingError", ""} {
			res, again := w.JSON(t, "POST", "/api/v1/wallet/top-ups", map[string]any{"amount_cents": 2500, "payment_token": token + "x"}, append(auth, "Idempotency-Key", "c")...)
			if res.StatusCode != 200 || again["id"] != first["id"] || again["balance_cents"] != float64(2500) {
				t.Errorf("the retried top-up with token %q: %d %s", token+"x", res.StatusCode, res.Raw)
			}
		}
		if res, body := w.JSON(t, "POST", "/api/v1/wallet/top-ups", map[string]any{"amount_cents": 9900, "payment_token": "tok_visa"}, append(auth, "Idempotency-Key", "c")...); res.StatusCode != 409 || errCode(body) != "idempotency_key_reused" {
			t.Errorf("the key again with another amount: %d %s", res.StatusCode, res.Raw)
		}
		// Each mistake is named: the field, and what is wrong with it.
		for _, c := range []struct {
			body        map[string]any
			key, code   string
			field, says string
		}{
			{map[string]any{"amount_cents": 2500}, "d", "payment_token_required", "payment_token", "required"},
			{map[string]any{"amount_cents": 2500, "payment_token": "  "}, "d", "payment_token_required", "payment_token", "required"},
			{map[string]any{"amount_cents": "ten", "payment_token": "tok_visa"}, "d", "invalid_request", "amount_cents", "wrong_type"},
			{map[string]any{"amount_cents": 499, "payment_token": "tok_visa"}, "d", "top_up_amount", "amount_cents", "range"},
			{map[string]any{"amount_cents": 2500, "payment_token": "tok_visa"}, strings.Repeat("k", 151), "invalid_idempotency_key", "Idempotency-Key", "too_long"},
			{map[string]any{"amount_cents": 2500, "payment_token": "tok_visa"}, "café", "invalid_idempotency_key", "Idempotency-Key", "invalid"},
		} {
			res, body := w.JSON(t, "POST", "/api/v1/wallet/top-ups", c.body, append(auth, "Idempotency-Key", c.key)...)
			fields, _ := body["error"].(map[string]any)["fields"].(map[string]any)
			if res.StatusCode != 400 || errCode(body) != c.code || fields[c.field] != c.says {
				t.Errorf("%v with key %.10q: %d %s", c.body, c.key, res.StatusCode, res.Raw)
			}
		}
		if res, _ := w.JSON(t, "POST", "/api/v1/wallet/top-ups", map[string]any{"amount_cents": 500, "payment_token": "tok_visa"}, append(auth, "Idempotency-Key", strings.Repeat("k", 150))...); res.StatusCode != 201 {
			t.Errorf("a key of 150 characters: %d %s", res.StatusCode, res.Raw)
		}
		// Both receipts are queued by now; they may be mailed in either order.
		receipt := w.mailTo(t, "ana@example.org", 2)
		if other := w.mailTo(t, "ana@example.org", 3); strings.Contains(other.Subject, "$25.00") {
			receipt = other
		}
		if !strings.Contains(receipt.Subject, "$25.00") || !strings.Contains(receipt.Text, "MODO DE PRUEBA: no se cobró dinero real") {
			t.Errorf("receipt: %q\n%s", receipt.Subject, receipt.Text)
		}
		if out := w.Command(t, "ledger", "verify"); !strings.Contains(out, "ledger verified: 2 transactions") {
			t.Fatalf("ledger verify: %s", out)
		}
	})
}

// A family has its whole balance refunded to its cards: 201 with the refund, the
// same key again the same refund (200), "pending" until the processor confirmed
// every part, then "refunded"; an empty wallet is refused in the family's words;
// another family's refund is not found. Every answer is checked against the
// OpenAPI document (see start).
func TestWalletRefunds(t *testing.T) {
	eachEngine(t, nil, func(t *testing.T, w *world) {
		auth := bearer(w.register(t, "ana@example.org"))
		other := bearer(w.register(t, "bea@example.org"))
		res, body := w.JSON(t, "POST", "/api/v1/wallet/refunds", nil, append(auth, "Idempotency-Key", "r0", "Accept-Language", "es")...)
		if res.StatusCode != 409 || errCode(body) != "nothing_to_refund" {
			t.Fatalf("refund of an empty wallet: %d %s", res.StatusCode, res.Raw)
		}
		if msg := body["error"].(map[string]any)["message"]; msg != "No hay dinero en su billetera para reembolsar." {
			t.Errorf("the refusal says %q", msg)
		}
		for _, key := range []string{"a", "b"} {
			if res, _ := w.JSON(t, "POST", "/api/v1/wallet/top-ups", map[string]any{"amount_cents": 2500, "payment_token": "tok_visa"}, append(auth, "Idempotency-Key", key)...); res.StatusCode != 201 {
				t.Fatalf("top-up: %d %s", res.StatusCode, res.Raw)
			}
		}
		res, first := w.JSON(t, "POST", "/api/v1/wallet/refunds", nil, append(auth, "Idempotency-Key", "r1")...)
		if res.StatusCode != 201 || first["amount_cents"] != float64(5000) || first["state"] != "pending" || first["fee_cents"] != float64(0) || first["cards"] != float64(2) {
			t.Fatalf("refund: %d %s", res.StatusCode, res.Raw)
		}
		res, again := w.JSON(t, "POST", "/api/v1/wallet/refunds", nil, append(auth, "Idempotency-Key", "r1")...)
		if res.StatusCode != 200 || again["id"] != first["id"] || again["amount_cents"] != float64(5000) {
			t.Fatalf("the same key again: %d %s", res.StatusCode, res.Raw)
		}
		if res, body := w.JSON(t, "GET", "/api/v1/wallet", nil, auth...); body["balance_cents"] != float64(0) {
			t.Errorf("the wallet after its refund: %s", res.Raw)
		}
		// A new key finds the wallet empty: the money went once.
		if res, body := w.JSON(t, "POST", "/api/v1/wallet/refunds", nil, append(auth, "Idempotency-Key", "r2")...); res.StatusCode != 409 || errCode(body) != "nothing_to_refund" {
			t.Errorf("another refund: %d %s", res.StatusCode, res.Raw)
		}
		if res, body := w.JSON(t, "POST", "/api/v1/wallet/refunds", nil, append(auth, "Idempotency-Key", "café")...); res.StatusCode != 400 || errCode(body) != "invalid_idempotency_key" {
			t.Errorf("a key that is not ASCII: %d %s", res.StatusCode, res.Raw)
		}
		w.JobsSettled(t)
		path := "/api/v1/wallet/refunds/" + first["id"].(string)
		if res, got := w.JSON(t, "GET", path, nil, auth...); res.StatusCode != 200 || got["state"] != "refunded" || got["id"] != first["id"] {
			t.Errorf("the refund once the processor confirmed: %d %s", res.StatusCode, res.Raw)
		}
		for _, c := range []struct {
			path string
			auth []string
		}{{path, other}, {"/api/v1/wallet/refunds/0123456789abcdef0123456789abcdef", auth}, {"/api/v1/wallet/refunds/nope", auth}} {
			if res, body := w.JSON(t, "GET", c.path, nil, c.auth...); res.StatusCode != 404 || errCode(body) != "not_found" {
				t.Errorf("GET %s: %d %s", c.path, res.StatusCode, res.Raw)
			}
		}
		if res, _ := w.JSON(t, "GET", path, nil); res.StatusCode != 401 {
			t.Errorf("without a token: %d", res.StatusCode)
		}
		var receipt string
		for n := 2; n <= 4 && receipt == ""; n++ {
			if m := w.mailTo(t, "ana@example.org", n); strings.HasPrefix(m.Subject, "Reembolso: $50.00") {
				receipt = m.Text
			}
		}
		if words := strings.Join(strings.Fields(receipt), " "); !strings.Contains(words, "$50.00, está en camino a la tarjeta o las tarjetas con que pagó, completo y sin comisión") ||
			!strings.Contains(words, "Pagos con tarjeta: 2") {
			t.Errorf("the refund's receipt:\n%s", receipt)
		}
		// Two top-ups, the refund out of the wallet, and one card refund per top-up.
		if out := w.Command(t, "ledger", "verify"); !strings.Contains(out, "ledger verified: 5 transactions") {
			t.Fatalf("ledger verify: %s", out)
		}
	})
}
