package web

import (
	"io/fs"
	"net/http"
	"time"

	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/messaging"
)

// route is one page or form of the site: who may use it, and the largest body it
// takes when that is more than the server's default.
type route struct {
	pattern string
	access  func(http.HandlerFunc) http.HandlerFunc
	handler http.HandlerFunc
	body    int64
}

// routes is every route of the site. Every page knows who is signed in (withAccount),
// except the few that serve files.
func (s *Site) routes() []route {
	anyone := func(h http.HandlerFunc) http.HandlerFunc { return h }
	family := s.requireLogin // a family member signed in, or the login page
	staff := s.requireStaff  // staff signed in with their second factor, or the portal's login
	whoever := s.withStaff   // anyone; staff are known too (a photo is the family's, a reviewer's or a resident's)
	// Kiosk pages check the enrolled device and the resident's session themselves:
	// a kiosk is no account.
	kiosk := anyone
	static, _ := fs.Sub(files, "static")
	return []route{
		// The public site.
		{"GET /{$}", anyone, s.home, 0},
		{"GET /help", anyone, s.help, 0},
		{"GET /privacy", anyone, s.privacy, 0},

		// Families: accounts.
		{"GET /signup", anyone, s.signupPage, 0},
		{"POST /signup", anyone, s.signupSubmit, 0},
		{"GET /signup/verify", anyone, s.signupVerifyPage, 0},
		{"POST /signup/verify", anyone, s.signupVerifySubmit, 0},
		{"GET /login", anyone, s.loginPage, 0},
		{"POST /login", anyone, s.loginSubmit, 0},
		{"GET /login/code", anyone, s.loginCodePage, 0},
		{"POST /login/code", anyone, s.loginCodeSubmit, 0},
		{"POST /logout", anyone, s.logout, 0},
		{"GET /password/forgot", anyone, s.forgotPage, 0},
		{"POST /password/forgot", anyone, s.forgotSubmit, 0},
		{"GET /password/verify", anyone, s.resetVerifyPage, 0},
		{"POST /password/verify", anyone, s.resetVerifySubmit, 0},
		{"GET /password/question", anyone, s.resetQuestionPage, 0},
		{"POST /password/question", anyone, s.resetQuestionSubmit, 0},
		{"GET /password/new", anyone, s.resetNewPage, 0},
		{"POST /password/new", anyone, s.resetNewSubmit, 0},
		{"GET /account", family, s.accountPage, 0},
		{"POST /account/password", family, s.changePassword, 0},
		{"POST /account/question", family, s.changeQuestion, 0},
		{"POST /account/language", family, s.changeLanguage, 0},
		{"POST /account/sessions/{id}/revoke", family, s.revokeSession, 0},
		{"GET /account/two-factor", family, s.twoFactorPage, 0},
		{"POST /account/two-factor", family, s.twoFactorEnable, 0},
		{"POST /account/two-factor/disable", family, s.twoFactorDisable, 0},

		// Families: their people, messages and wallet.
		{"GET /people", family, s.peoplePage, 0},
		{"POST /people", family, s.addPerson, 0},
		{"GET /people/{id}/messages", family, s.conversationPage, 0},
		{"POST /people/{id}/messages", family, s.sendMessage, messaging.MaxSendBytes},
		{"GET /photos/{id}", whoever, s.photo, 0},
		{"GET /wallet", family, s.walletPage, 0},
		{"POST /wallet/top-ups", family, s.walletTopUp, 0},

		// Residents at kiosks.
		{"GET /kiosk", kiosk, s.kioskHome, 0},
		{"POST /kiosk/enrol", kiosk, s.kioskEnrol, 0},
		{"POST /kiosk/login", kiosk, s.kioskLogin, 0},
		{"POST /kiosk/pin", kiosk, s.kioskPIN, 0},
		{"POST /kiosk/logout", kiosk, s.kioskLogout, 0},
		{"GET /kiosk/messages/{contact}", kiosk, s.kioskThread, 0},
		{"POST /kiosk/messages/{contact}", kiosk, s.kioskReply, 0},
		{"GET /kiosk/latest", kiosk, s.kioskLatest, 0},

		// Staff: signing in.
		{"GET /facility", whoever, s.portalHome, 0},
		{"POST /facility/login", anyone, s.portalLogin, 0},
		{"GET /facility/code", anyone, s.portalCodePage, 0},
		{"POST /facility/code", anyone, s.portalCodeSubmit, 0},
		{"POST /facility/logout", anyone, s.portalLogout, 0},
		{"GET /facility/enrol", anyone, s.enrolPage, 0},
		{"POST /facility/enrol", anyone, s.enrolSubmit, 0},

		// Staff: the facility's work.
		{"GET /facility/contacts", staff, s.contactQueue, 0},
		{"POST /facility/contacts/{id}", staff, s.decideContact, 0},
		{"GET /facility/review", staff, s.reviewQueue, 0},
		{"POST /facility/review/settings", staff, s.saveReviewSettings, 0},
		{"POST /facility/review/reasons", staff, s.addRejectReason, 0},
		{"POST /facility/review/reasons/{code}", staff, s.retireRejectReason, 0},
		{"GET /facility/review/{id}", staff, s.reviewItem, 0},
		{"POST /facility/review/{id}", staff, s.decideMessage, 0},
		{"GET /facility/residents", staff, s.residentsPage, 0},
		{"POST /facility/residents/{id}/pin", staff, s.setPIN, 0},
		{"GET /facility/kiosks", staff, s.kiosksPage, 0},
		{"POST /facility/kiosks", staff, s.createKiosk, 0},
		{"POST /facility/kiosks/{id}/revoke", staff, s.revokeKiosk, 0},
		{"GET /facility/roster", staff, s.rosterPage, 0},
		{"POST /facility/roster", staff, s.rosterUpload, facility.MaxRosterBytes},
		{"POST /facility/roster/{id}/apply", staff, s.rosterApply, 0},
		{"POST /facility/roster/tokens", staff, s.createRosterToken, 0},
		{"POST /facility/roster/tokens/{id}/revoke", staff, s.revokeRosterToken, 0},

		// Staff: the agency's administration.
		{"GET /facility/staff", staff, s.staffPage, 0},
		{"POST /facility/staff", staff, s.addStaff, 0},
		{"POST /facility/staff/{id}/reset", staff, s.resetStaff, 0},
		{"POST /facility/staff/{id}/roles", staff, s.changeRole, 0},
		{"POST /facility/staff/{id}/disable", staff, s.disableStaff, 0},
		{"GET /facility/agency", staff, s.agencyPage, 0},
		{"POST /facility/agency/policies", staff, s.savePolicies, 0},
		{"POST /facility/agency/facilities", staff, s.addFacility, 0},
		{"GET /facility/audit", staff, s.auditPage, 0},

		// Files, and pages that know no one.
		{"GET /lang", nil, s.switchLanguage, 0},
		{"GET /manifest.webmanifest", nil, s.manifest, 0},
		{"GET /favicon.ico", nil, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/static/icon-192.png", http.StatusMovedPermanently)
		}, 0},
		{"GET /static/", nil, http.StripPrefix("/static/", cacheFor(24*time.Hour, http.FileServerFS(static))).ServeHTTP, 0},
		{"/", anyone, func(w http.ResponseWriter, r *http.Request) { s.Error(w, r, http.StatusNotFound) }, 0},
	}
}

// Routes registers the site on mux.
func (s *Site) Routes(mux *http.ServeMux) {
	s.mux, s.bodyLimits = mux, map[string]int64{}
	for _, rt := range s.routes() {
		if rt.body > 0 {
			s.bodyLimits[rt.pattern] = rt.body
		}
		if rt.access == nil {
			mux.HandleFunc(rt.pattern, rt.handler)
			continue
		}
		mux.Handle(rt.pattern, s.withAccount(rt.access(rt.handler)))
	}
}

// BodyLimit is the largest body the route of r takes, when its route says more than
// the server's default (0 otherwise).
func (s *Site) BodyLimit(r *http.Request) int64 {
	if s.mux == nil {
		return 0
	}
	_, pattern := s.mux.Handler(r)
	return s.bodyLimits[pattern]
}
