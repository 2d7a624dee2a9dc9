package api

import (
	"net/http"

	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/messaging"
)

// route is one operation of the API: who may call it, and the largest body it takes
// when that is more than the server's default.
type route struct {
	pattern string
	access  func(http.HandlerFunc) http.HandlerFunc
	handler http.HandlerFunc
	body    int64
}

// routes is every operation of the API; the OpenAPI document describes each.
func (a *API) routes() []route {
	public := func(h http.HandlerFunc) http.HandlerFunc { return h }
	family := a.authenticated     // a family's app token
	staff := a.staffAuthenticated // a staff member's token for automated roster syncs
	return []route{
		{"GET /api/v1/openapi.json", public, a.openAPI, 0},
		{"GET /api/v1/security-questions", public, a.securityQuestions, 0},
		{"POST /api/v1/signup", public, a.signup, 0},
		{"POST /api/v1/signup/verify", public, a.signupVerify, 0},
		{"POST /api/v1/login", public, a.login, 0},
		{"GET /api/v1/me", family, a.me, 0},
		{"POST /api/v1/logout", family, a.logout, 0},
		{"POST /api/v1/password/forgot", public, a.passwordForgot, 0},
		{"POST /api/v1/password/verify", public, a.passwordVerify, 0},
		{"POST /api/v1/password/reset", public, a.passwordReset, 0},
		{"GET /api/v1/agencies", family, a.agencies, 0},
		{"GET /api/v1/residents", family, a.residents, 0},
		{"POST /api/v1/contacts", family, a.addContact, 0},
		{"GET /api/v1/contacts", family, a.listContacts, 0},
		{"GET /api/v1/contacts/{id}/messages", family, a.listMessages, 0},
		{"POST /api/v1/contacts/{id}/messages", family, a.sendMessage, messaging.MaxSendBytes},
		{"POST /api/v1/contacts/{id}/messages/read", family, a.repliesRead, 0},
		{"GET /api/v1/contacts/{id}/messages/quote", family, a.quote, 0},
		{"GET /api/v1/photos/{id}", family, a.photo, 0},
		{"GET /api/v1/wallet", family, a.wallet, 0},
		{"POST /api/v1/wallet/top-ups", family, a.topUp, 0},
		{"POST /api/v1/roster", staff, a.importRoster, facility.MaxRosterBytes},
		{"/api/", public, a.unmatched, 0},
	}
}

// BodyLimit is the largest body the operation of r takes, when its route says more
// than the server's default (0 otherwise).
func (a *API) BodyLimit(r *http.Request) int64 {
	_, pattern := a.mux.Handler(r)
	return a.bodyLimits[pattern]
}
