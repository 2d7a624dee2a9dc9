package api

import (
	"io"
	"net/http"

	"github.com/kinlink/kinlink/internal/ledger"
)

// Webhooks reads a payment processor's signed event notifications (Stripe's).
type Webhooks interface {
	ParseWebhook(payload []byte, signatureHeader string) (ledger.PaymentEvent, bool, error)
}

// MaxWebhookBytes bounds an event's body: Stripe's are a few kilobytes.
const MaxWebhookBytes = 256 << 10

// paymentWebhook applies one signed event of the payment processor: a charge
// confirmed or failed, a dispute. It answers 200 once the event is stored and
// applied (or is one Kinlink ignores), so the processor stops sending it; 400 for
// a body whose signature does not verify; 500 when applying failed, so the
// processor sends it again later (each event is applied once, by its id).
func (a *API) paymentWebhook(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ev, ok, err := a.webhooks.ParseWebhook(body, r.Header.Get("Stripe-Signature"))
	if err != nil {
		a.log.Warn("api: payment webhook refused", "err", err)
		a.fail(w, r, err)
		return
	}
	if ok {
		if err := a.deposits.HandleEvent(r.Context(), ev); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]bool{"received": true})
}
