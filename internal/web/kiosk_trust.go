package web

import (
	"net/http"

	"github.com/kinlink/kinlink/internal/deposits"
	"github.com/kinlink/kinlink/internal/httpx"
	"github.com/kinlink/kinlink/internal/ledger"
)

// A resident's trust money at the kiosk: the balance, what they owe after a
// chargeback, and the deposits they received.

// kioskTrustRoutes are the kiosk's money page, where the server takes deposits.
func (s *Site) kioskTrustRoutes() []httpx.Route {
	if s.deposits == nil {
		return nil
	}
	kiosk := func(h http.HandlerFunc) http.HandlerFunc { return h } // it checks the kiosk itself
	return []httpx.Route{
		httpx.On("GET /kiosk/trust", kiosk, s.kioskTrust),
	}
}

// KioskTrust is a resident's trust money at the kiosk.
type KioskTrust struct {
	Balance  string
	Owed     string // what they owe after a chargeback; "" for nothing
	Received []deposits.Deposit
}

// kioskTrust shows the signed-in resident their trust balance and the deposits
// they received.
func (s *Site) kioskTrust(w http.ResponseWriter, r *http.Request) {
	d, ok := s.kioskSession(w, r)
	if !ok {
		return
	}
	t, err := s.deposits.TrustOf(r.Context(), d.Session.Resident, 50)
	if err != nil {
		s.failed(w, r, err)
		return
	}
	d.Trust = &KioskTrust{Balance: ledger.Dollars(t.BalanceCents), Received: t.Received}
	if t.OwedCents > 0 {
		d.Trust.Owed = ledger.Dollars(t.OwedCents)
	}
	s.renderKiosk(w, r, http.StatusOK, "kiosk_trust", d)
}
