package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/identity"
)

// The roster API lets an agency's offender-management system send its daily full
// roster with a staff member's token (created in the portal's Roster page).

type staffKey struct{}

func (a *API) staffAuthenticated(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			a.fail(w, r, identity.ErrUnauthenticated)
			return
		}
		acct, _, err := a.identity.Authenticate(r.Context(), strings.TrimSpace(token), identity.StaffAPI)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		access, err := a.facility.AccessOf(r.Context(), acct.ID)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), staffKey{}, access)))
	}
}

type rejectedJSON struct {
	Line       int    `json:"line"`
	ResidentID string `json:"resident_id"`
	Reason     string `json:"reason"`
}

func (a *API) importRoster(w http.ResponseWriter, r *http.Request) {
	access := r.Context().Value(staffKey{}).(facility.Access)
	opts := facility.RosterOptions{Apply: r.URL.Query().Get("apply") == "true", AllowMassRelease: r.URL.Query().Get("allow_mass_release") == "true"}
	sum, err := a.facility.ImportRoster(r.Context(), facility.Actor{AccountID: access.AccountID}, access.AgencyID, r.Body, opts)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) { // the body limit, which the transport set
		a.Error(w, r, http.StatusRequestEntityTooLarge, "payload_too_large")
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	rejected := make([]rejectedJSON, 0, len(sum.Rejected))
	for _, rj := range sum.Rejected {
		rejected = append(rejected, rejectedJSON{rj.Line, rj.Resident, rj.Reason})
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"applied": sum.Applied, "rows": sum.Rows, "new": sum.New, "moved": sum.Moved, "released": sum.Released,
		"changed": sum.Changed, "unchanged": sum.Unchanged, "rejected": rejected, "releases_skipped": sum.ReleasesSkipped,
	})
}
