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
