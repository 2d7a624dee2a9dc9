package web

import (
	"io/fs"
	"net/http"
	"slices"
	"time"

	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/httpx"
	"github.com/kinlink/kinlink/internal/messaging"
)

// routes is every route of the site. Every page knows who is signed in (withAccount),
// except the few that serve files.
func (s *Site) routes() []httpx.Route {
	anyone := func(h http.HandlerFunc) http.HandlerFunc { return h }
	family := s.requireLogin // a family member signed in, or the login page
	staff := s.requireStaff  // staff signed in with their second factor, or the portal's login
	whoever := s.withStaff   // anyone; staff are known too (a photo is the family's, a reviewer's or a resident's)
	// Kiosk pages check the enrolled device and the resident's session themselves:
	// a kiosk is no account.
	kiosk := anyone
	static, _ := fs.Sub(files, "static")
	return append([]httpx.Route{
		// The public site.
		httpx.On("GET /{$}", anyone, s.home),
		httpx.On("GET /help", anyone, s.help),
		httpx.On("GET /privacy", anyone, s.privacy),

		// Families: accounts.
		httpx.On("GET /signup", anyone, s.signupPage),
		httpx.On("POST /signup", anyone, s.signupSubmit),
		httpx.On("GET /signup/verify", anyone, s.signupVerifyPage),
		httpx.On("POST /signup/verify", anyone, s.signupVerifySubmit),
		httpx.On("GET /login", anyone, s.loginPage),
		httpx.On("POST /login", anyone, s.loginSubmit),
		httpx.On("GET /login/code", anyone, s.loginCodePage),
		httpx.On("POST /login/code", anyone, s.loginCodeSubmit),
		httpx.On("POST /logout", anyone, s.logout),
		httpx.On("GET /password/forgot", anyone, s.forgotPage),
		httpx.On("POST /password/forgot", anyone, s.forgotSubmit),
		httpx.On("GET /password/verify", anyone, s.resetVerifyPage),
		httpx.On("POST /password/verify", anyone, s.resetVerifySubmit),
		httpx.On("GET /password/question", anyone, s.resetQuestionPage),
		httpx.On("POST /password/question", anyone, s.resetQuestionSubmit),
		httpx.On("GET /password/new", anyone, s.resetNewPage),
		httpx.On("POST /password/new", anyone, s.resetNewSubmit),
		httpx.On("POST /password/forgot-answer", anyone, s.forgotAnswerSubmit),
		httpx.On("GET /password/waiting", anyone, s.waitingPage),
		httpx.On("GET /password/ready", anyone, s.readyPage),
		httpx.On("POST /password/ready", anyone, s.readySubmit),
		httpx.On("GET /password/renew", anyone, s.renewPage),
		httpx.On("POST /password/renew", anyone, s.renewSubmit),
		httpx.On("GET /password/stop", anyone, s.stopPage),
		httpx.On("POST /password/stop", anyone, s.stopSubmit),
		httpx.On("GET /account", family, s.accountPage),
		httpx.On("POST /account/password", family, s.changePassword),
		httpx.On("POST /account/question", family, s.changeQuestion),
		httpx.On("POST /account/settings", family, s.changeSettings),
		httpx.On("POST /account/sessions/{id}/revoke", family, s.revokeSession),
		httpx.On("GET /account/two-factor", family, s.twoFactorPage),
		httpx.On("POST /account/two-factor", family, s.twoFactorEnable),
		httpx.On("POST /account/two-factor/disable", family, s.twoFactorDisable),

		// Families: their people, messages and wallet.
		httpx.On("GET /people", family, s.peoplePage),
		httpx.On("POST /people", family, s.addPerson),
		httpx.On("GET /people/{id}/messages", family, s.conversationPage),
		httpx.On("POST /people/{id}/messages", family, s.sendMessage).Taking(messaging.MaxSendBytes),
		httpx.On("GET /photos/{id}", whoever, s.photo),
		httpx.On("GET /videograms/{id}/video", whoever, s.videogramVideo),
		httpx.On("GET /videograms/{id}/poster", whoever, s.videogramPoster),
		httpx.On("GET /wallet", family, s.walletPage),
		httpx.On("POST /wallet/top-ups", family, s.walletTopUp),
		httpx.On("POST /wallet/refunds", family, s.walletRefund),

		// Residents at kiosks.
		httpx.On("GET /kiosk", kiosk, s.kioskHome),
		httpx.On("POST /kiosk/enrol", kiosk, s.kioskEnrol),
		httpx.On("POST /kiosk/login", kiosk, s.kioskLogin),
		httpx.On("POST /kiosk/pin", kiosk, s.kioskPIN),
		httpx.On("POST /kiosk/logout", kiosk, s.kioskLogout),
		httpx.On("GET /kiosk/messages/{contact}", kiosk, s.kioskThread),
		httpx.On("POST /kiosk/messages/{contact}", kiosk, s.kioskReply),
		httpx.On("GET /kiosk/messages/{contact}/photos/{photo}", kiosk, s.kioskPhoto),
		httpx.On("GET /kiosk/messages/{contact}/videograms/{id}", kiosk, s.kioskVideo),
		httpx.On("GET /kiosk/latest", kiosk, s.kioskLatest),
		httpx.On("POST /kiosk/alive", kiosk, s.kioskAlive),
		httpx.On("GET /kiosk/lang", nil, s.kioskLanguage),

		// Staff: signing in.
		httpx.On("GET /facility", whoever, s.portalHome),
		httpx.On("POST /facility/login", anyone, s.portalLogin),
		httpx.On("GET /facility/code", anyone, s.portalCodePage),
		httpx.On("POST /facility/code", anyone, s.portalCodeSubmit),
		httpx.On("POST /facility/logout", anyone, s.portalLogout),
		httpx.On("GET /facility/enrol", anyone, s.enrolPage),
		httpx.On("POST /facility/enrol", anyone, s.enrolSubmit),

		// Staff: the facility's work.
		httpx.On("GET /facility/contacts", staff, s.contactQueue),
		httpx.On("POST /facility/contacts/{id}", staff, s.decideContact),
		httpx.On("GET /facility/review", staff, s.reviewQueue),
		httpx.On("POST /facility/review/settings", staff, s.saveReviewSettings),
		httpx.On("POST /facility/review/reasons", staff, s.addRejectReason),
		httpx.On("POST /facility/review/reasons/{code}", staff, s.retireRejectReason),
		httpx.On("GET /facility/review/{id}", staff, s.reviewItem),
		httpx.On("POST /facility/review/{id}", staff, s.decideMessage),
		httpx.On("GET /facility/residents", staff, s.residentsPage),
		httpx.On("POST /facility/residents/{id}/pin", staff, s.setPIN),
		httpx.On("GET /facility/kiosks", staff, s.kiosksPage),
		httpx.On("POST /facility/kiosks", staff, s.createKiosk),
		httpx.On("POST /facility/kiosks/{id}/revoke", staff, s.revokeKiosk),
		httpx.On("POST /facility/kiosks/{id}/unpause", staff, s.unpauseKiosk),
		httpx.On("GET /facility/roster", staff, s.rosterPage),
		httpx.On("POST /facility/roster", staff, s.rosterUpload).Taking(facility.MaxRosterBytes),
		httpx.On("POST /facility/roster/{id}/apply", staff, s.rosterApply),
		httpx.On("GET /facility/roster/template.csv", staff, s.rosterTemplate),
		httpx.On("GET /facility/roster/export.csv", staff, s.rosterExport),
		httpx.On("POST /facility/roster/tokens", staff, s.createRosterToken),
		httpx.On("POST /facility/roster/tokens/{id}/revoke", staff, s.revokeRosterToken),

		// Staff: the finance office's deposits (and the agency's deposit policy).
		httpx.On("GET /facility/deposits", staff, s.portalDepositsPage),
		httpx.On("GET /facility/deposits/{id}", staff, s.portalDepositPage),
		httpx.On("POST /facility/deposits/{id}/decide", staff, s.decideDeposit),
		httpx.On("GET /facility/deposits/report", staff, s.depositReportPage),
		httpx.On("GET /facility/deposits/report.csv", staff, s.depositReportCSV),
		httpx.On("GET /facility/deposits/released", staff, s.releasedBalancesPage),
		httpx.On("GET /facility/deposits/feed-keys", staff, s.feedKeysPage),
		httpx.On("POST /facility/deposits/feed-keys", staff, s.createFeedKey),
		httpx.On("POST /facility/deposits/feed-keys/{id}/revoke", staff, s.revokeFeedKey),
		httpx.On("GET /facility/deposits/settings", staff, s.depositSettingsPage),
		httpx.On("POST /facility/deposits/settings", staff, s.saveDepositSettings),

		// Staff: the agency's administration.
		httpx.On("GET /facility/staff", staff, s.staffPage),
		httpx.On("POST /facility/staff", staff, s.addStaff),
		httpx.On("POST /facility/staff/{id}/reset", staff, s.resetStaff),
		httpx.On("POST /facility/staff/{id}/roles", staff, s.changeRole),
		httpx.On("POST /facility/staff/{id}/disable", staff, s.disableStaff),
		httpx.On("GET /facility/agency", staff, s.agencyPage),
		httpx.On("POST /facility/agency/policies", staff, s.savePolicies),
		httpx.On("POST /facility/agency/facilities", staff, s.addFacility),
		httpx.On("GET /facility/audit", staff, s.auditPage),

		// Files, and pages that know no one.
		httpx.On("GET /lang", nil, s.switchLanguage),
		httpx.On("GET /manifest.webmanifest", nil, s.manifest),
		httpx.On("GET /favicon.ico", nil, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/static/icon-192.png", http.StatusMovedPermanently)
		}),
		httpx.On("GET /static/", nil, http.StripPrefix("/static/", cacheFor(24*time.Hour, http.FileServerFS(static))).ServeHTTP),
		httpx.On("/", anyone, func(w http.ResponseWriter, r *http.Request) { s.Error(w, r, http.StatusNotFound) }),
	}, slices.Concat(s.videogramRoutes(), s.visitRoutes(), s.portalVisitRoutes(), s.portalRecordingRoutes(),
		s.depositRoutes(), s.kioskTrustRoutes())...)
}

// videogramRoutes are the family's VideoGram sends and resumable uploads, where
// the server offers VideoGrams.
func (s *Site) videogramRoutes() []httpx.Route {
	if s.resumable == nil {
		return nil
	}
	family := s.requireLogin
	kiosk := func(h http.HandlerFunc) http.HandlerFunc { return h } // it checks the kiosk itself
	// A piece of an upload, or a whole clip posted without the script, is as large
	// as a clip may be, and the form around it a little more.
	clip := s.uploads.MaxBytes() + 1<<20
	return []httpx.Route{
		httpx.On("POST /people/{id}/videograms", family, s.sendVideoGram).Taking(clip),
		httpx.On("POST /kiosk/messages/{contact}/videograms", kiosk, s.kioskVideoGramReply),
		httpx.On("OPTIONS /uploads/", nil, s.resumable.Options),
		httpx.On("POST /uploads/", family, s.resumable.Create),
		httpx.On("HEAD /uploads/{id}", family, s.resumable.Offset),
		httpx.On("PATCH /uploads/{id}", family, s.resumable.Append).Taking(clip),
		httpx.On("DELETE /uploads/{id}", family, s.resumable.Cancel),
		// A resident recording a reply at a kiosk uploads as the resident: a
		// browser may hold a family's session too, and that is not whose it is.
		httpx.On("POST /kiosk/uploads/", s.kioskUploader, s.kioskResumable.Create),
		httpx.On("HEAD /kiosk/uploads/{id}", s.kioskUploader, s.kioskResumable.Offset),
		httpx.On("PATCH /kiosk/uploads/{id}", s.kioskUploader, s.kioskResumable.Append).Taking(clip),
		httpx.On("DELETE /kiosk/uploads/{id}", s.kioskUploader, s.kioskResumable.Cancel),
	}
}

// Routes registers the site on mux.
func (s *Site) Routes(mux *http.ServeMux) { s.table = httpx.Register(mux, s.withAccount, s.routes()) }

// BodyLimit is the largest body the route of r takes, when its route says more than
// the server's default (0 otherwise).
func (s *Site) BodyLimit(r *http.Request) int64 { return s.table.BodyLimit(r) }
