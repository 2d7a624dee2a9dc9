package api

import (
	"net/http"

	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/httpx"
	"github.com/kinlink/kinlink/internal/messaging"
)

// routes is every operation of the API; the OpenAPI document describes each.
func (a *API) routes() []httpx.Route {
	public := func(h http.HandlerFunc) http.HandlerFunc { return h }
	family := a.authenticated     // a family's app token
	staff := a.staffAuthenticated // a staff member's token for automated roster syncs
	feed := a.feedAuthenticated   // an agency's feed key (klfeed_…) for its trust system
	routes := []httpx.Route{
		httpx.On("GET /api/v1/openapi.json", public, a.openAPI),
		httpx.On("GET /api/v1/security-questions", public, a.securityQuestions),
		httpx.On("POST /api/v1/signup", public, a.signup),
		httpx.On("POST /api/v1/signup/verify", public, a.signupVerify),
		httpx.On("POST /api/v1/login", public, a.login),
		httpx.On("GET /api/v1/me", family, a.me),
		httpx.On("PATCH /api/v1/me", family, a.changeSettings),
		httpx.On("POST /api/v1/logout", family, a.logout),
		httpx.On("POST /api/v1/password/forgot", public, a.passwordForgot),
		httpx.On("POST /api/v1/password/verify", public, a.passwordVerify),
		httpx.On("POST /api/v1/password/reset", public, a.passwordReset),
		httpx.On("POST /api/v1/password/forgot-answer", public, a.passwordForgotAnswer),
		httpx.On("POST /api/v1/password/renew", public, a.passwordRenew),
		httpx.On("GET /api/v1/agencies", family, a.agencies),
		httpx.On("GET /api/v1/residents", family, a.residents),
		httpx.On("POST /api/v1/contacts", family, a.addContact),
		httpx.On("GET /api/v1/contacts", family, a.listContacts),
		httpx.On("GET /api/v1/contacts/{id}/messages", family, a.listMessages),
		httpx.On("POST /api/v1/contacts/{id}/messages", family, a.sendMessage).Taking(messaging.MaxSendBytes),
		httpx.On("POST /api/v1/contacts/{id}/messages/read", family, a.repliesRead),
		httpx.On("GET /api/v1/contacts/{id}/messages/quote", family, a.quote),
		httpx.On("GET /api/v1/photos/{id}", family, a.photo),
		httpx.On("GET /api/v1/wallet", family, a.wallet),
		httpx.On("POST /api/v1/wallet/top-ups", family, a.topUp),
		httpx.On("POST /api/v1/wallet/refunds", family, a.refundWallet),
		httpx.On("GET /api/v1/wallet/refunds/{id}", family, a.walletRefund),
		httpx.On("POST /api/v1/roster", staff, a.importRoster).Taking(facility.MaxRosterBytes),
		httpx.On("GET /api/v1/videograms/{id}/video", family, a.videogramVideo),
		httpx.On("GET /api/v1/videograms/{id}/poster", family, a.videogramPoster),
		httpx.On("POST /api/v1/contacts/{id}/videograms", family, a.sendVideoGram),
		httpx.On("GET /api/v1/contacts/{id}/deposits/quote", family, a.quoteDeposit),
		httpx.On("POST /api/v1/deposits", family, a.createDeposit),
		httpx.On("GET /api/v1/deposits", family, a.listDeposits),
		httpx.On("GET /api/v1/deposits/{id}", family, a.getDeposit),
		httpx.On("POST /api/v1/deposits/{id}/cancel", family, a.cancelDeposit),
		httpx.On("GET /api/v1/agency/deposits", feed, a.depositFeed),
		httpx.On("/api/", public, a.unmatched),
	}
	if a.webhooks != nil {
		// The payment processor's signed events: no session, the signature is the
		// proof (see paymentWebhook).
		routes = append(routes, httpx.On("POST /api/v1/webhooks/stripe", public, a.paymentWebhook).Taking(MaxWebhookBytes))
	}
	if a.uploads != nil {
		// The tus 1.0 resumable upload protocol: create, then HEAD for the offset
		// and PATCH the next piece; DELETE gives up.
		routes = append(routes,
			httpx.On("POST /api/v1/uploads", family, a.uploads.Create),
			httpx.On("HEAD /api/v1/uploads/{id}", family, a.uploads.Offset),
			httpx.On("PATCH /api/v1/uploads/{id}", family, a.uploads.Append).Taking(a.maxUpload),
			httpx.On("DELETE /api/v1/uploads/{id}", family, a.uploads.Cancel))
	}
	if a.visits != nil {
		// Video visits, where the server offers them; elsewhere these paths are
		// unknown (404).
		routes = append(routes,
			httpx.On("GET /api/v1/contacts/{id}/visit-slots", family, a.visitSlots),
			httpx.On("POST /api/v1/visits", family, a.bookVisit),
			httpx.On("GET /api/v1/visits", family, a.listVisits),
			httpx.On("GET /api/v1/visits/{id}", family, a.getVisit),
			httpx.On("POST /api/v1/visits/{id}/cancel", family, a.cancelVisit),
			httpx.On("GET /api/v1/visits/{id}/signal", family, a.visitSignal),
			httpx.On("GET /api/v1/visits/{id}/ice-servers", family, a.visitICEServers))
	}
	return routes
}

// BodyLimit is the largest body the operation of r takes, when its route says more
// than the server's default (0 otherwise).
func (a *API) BodyLimit(r *http.Request) int64 {
	return a.table.BodyLimit(r)
}
