package web

import (
	"context"
	"errors"
	"net/http"

	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/httpx"
	"github.com/kinlink/kinlink/internal/identity"
)

// The staff portal ("facility login") at /facility: email, password and always a
// second factor; short sessions; every staff member sees only their agency.

// StaffCookie holds a staff portal session; it is not the family session cookie, so
// one browser cannot mix the two.
const StaffCookie = "__Host-kinlink_staff"

type staffKey struct{}

// StaffUser is who is signed in to the portal and what they may reach.
type StaffUser struct {
	Account identity.Account
	Session identity.Session
	Access  facility.Access
}

// staffAbsentKey holds, for a request that carried a staff session but has no staff
// member, why: "idle" (the session ended) or "noroles" (it is valid, but the account
// holds no role any more).
type staffAbsentKey struct{}

// withStaff finds the signed-in staff member, if any.
func (s *Site) withStaff(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if token := cookie(r, StaffCookie); token != "" {
			acct, sess, err := s.id.Authenticate(r.Context(), token, identity.StaffSession)
			switch {
			case err == nil:
				access, aerr := s.fac.AccessOf(r.Context(), acct.ID)
				if aerr == nil {
					r = r.WithContext(context.WithValue(r.Context(), staffKey{}, &StaffUser{acct, sess, access}))
				} else if errors.Is(aerr, facility.ErrForbidden) {
					r = r.WithContext(context.WithValue(r.Context(), staffAbsentKey{}, "noroles"))
				} else {
					s.log.Error("web: staff access", "err", aerr, "request_id", httpx.RequestID(r.Context()))
					s.Error(w, r, http.StatusInternalServerError)
					return
				}
			case errors.Is(err, identity.ErrUnauthenticated):
				s.clearCookie(w, StaffCookie)
				r = r.WithContext(context.WithValue(r.Context(), staffAbsentKey{}, "idle"))
			default:
				s.log.Error("web: staff authenticate", "err", err)
				s.Error(w, r, http.StatusInternalServerError)
				return
			}
		}
		next(w, r)
	}
}

func currentStaff(r *http.Request) *StaffUser {
	u, _ := r.Context().Value(staffKey{}).(*StaffUser)
	return u
}

// PortalHomeData is the portal's first page.
type PortalHomeData struct {
	Staff      *StaffUser
	Agency     facility.Agency
	Facilities []facility.Facility
	Roles      []RoleRow
}

// RoleRow is a role in words, with its facility.
type RoleRow struct{ Role, Facility string }

func (s *Site) portalHome(w http.ResponseWriter, r *http.Request) {
	u := currentStaff(r)
	if u == nil {
		notice := ""
		if n := r.URL.Query().Get("notice"); n == "logout" || n == "expired" || n == "idle" || n == "noroles" {
			notice = "login.notice." + n
		}
		s.renderPortal(w, r, http.StatusOK, "portal_login", "portal.login.title", PortalLoginData{Form: emptyForm(), Notice: notice})
		return
	}
	agency, err := s.fac.Agency(r.Context(), u.Access.AgencyID)
	if err != nil {
		s.log.Error("web: portal home", "err", err)
		s.Error(w, r, http.StatusInternalServerError)
		return
	}
	all, err := s.fac.Facilities(r.Context(), agency.ID)
	if err != nil {
		s.log.Error("web: portal home", "err", err)
		s.Error(w, r, http.StatusInternalServerError)
		return
	}
	d := PortalHomeData{Staff: u, Agency: agency}
	names := map[string]string{}
	for _, f := range all {
		names[f.ID] = f.Name
		if u.Access.Sees(f.ID) {
			d.Facilities = append(d.Facilities, f)
		}
	}
	lang := s.Lang(r)
	for _, g := range u.Access.Grants {
		row := RoleRow{Role: s.cat.T(lang, "role."+g.Role), Facility: names[g.FacilityID]}
		if g.FacilityID == "" {
			row.Facility = s.cat.T(lang, "portal.all_facilities")
		}
		d.Roles = append(d.Roles, row)
	}
	s.renderPortal(w, r, http.StatusOK, "portal_home", "portal.title", d)
}

// renderPortal renders a portal page: the layout shows the portal's header.
func (s *Site) renderPortal(w http.ResponseWriter, r *http.Request, status int, page, titleKey string, data any) {
	w.Header().Set("Cache-Control", "no-store")
	s.renderPage(w, r, status, page, titleKey, data, pagePortal)
}

// requireStaff sends visitors who are not signed in to the portal's login.
func (s *Site) requireStaff(next http.HandlerFunc) http.HandlerFunc {
	return s.withStaff(func(w http.ResponseWriter, r *http.Request) {
		if currentStaff(r) == nil {
			to := "/facility"
			if why, _ := r.Context().Value(staffAbsentKey{}).(string); why != "" {
				to += "?notice=" + why // say why the portal asks to log in
			}
			http.Redirect(w, r, to, http.StatusSeeOther)
			return
		}
		next(w, r)
	})
}
