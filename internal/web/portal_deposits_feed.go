package web

import (
	"net/http"

	"github.com/kinlink/kinlink/internal/deposits"
)

// The keys the agency's trust-accounting system reads the deposits feed with: named,
// shown once when made, listed with when they were last used, revoked at once.

// FeedKeysData is the feed keys page.
type FeedKeysData struct {
	DepositsFrame
	Keys []FeedKeyRow
	// NewKey is the key just made, shown this once; NewName its name.
	NewKey, NewName string
	Form            *Form // name
	BaseURL         string
	Done            string
}

// FeedKeyRow is a key as the page lists it, with who made it.
type FeedKeyRow struct {
	deposits.FeedKey
	By string
}

func (s *Site) feedKeysPage(w http.ResponseWriter, r *http.Request) {
	d := FeedKeysData{Form: emptyForm()}
	if r.URL.Query().Get("done") == "revoked" {
		d.Done = "portal.deposits.feed.done.revoked"
	}
	s.renderFeedKeys(w, r, http.StatusOK, d)
}

func (s *Site) renderFeedKeys(w http.ResponseWriter, r *http.Request, status int, d FeedKeysData) {
	u := currentStaff(r)
	keys, err := s.deposits.FeedKeys(r.Context(), u.Access)
	if err != nil {
		s.answer(w, r, err)
		return
	}
	names := map[string]string{}
	for _, k := range keys {
		if _, ok := names[k.CreatedBy]; !ok {
			names[k.CreatedBy] = ""
			if acct, err := s.id.Account(r.Context(), k.CreatedBy); err == nil {
				names[k.CreatedBy] = acct.FullName
			}
		}
		d.Keys = append(d.Keys, FeedKeyRow{FeedKey: k, By: names[k.CreatedBy]})
	}
	d.DepositsFrame, d.BaseURL = depositsFrame(u.Access, "feed"), s.id.Config().BaseURL
	s.renderPortal(w, r, status, "portal_deposits_feed", "portal.deposits.feed.title", d)
}

// createFeedKey makes a key and shows it on the page it answers: the only time it
// is shown (the page is not kept: no-store).
func (s *Site) createFeedKey(w http.ResponseWriter, r *http.Request) {
	f := newForm(r, "name")
	k, key, err := s.deposits.CreateFeedKey(r.Context(), currentStaff(r).Access, f.Values["name"])
	if err != nil {
		s.refuse(w, r, f, err, func(status int, f *Form) { s.renderFeedKeys(w, r, status, FeedKeysData{Form: f}) })
		return
	}
	s.renderFeedKeys(w, r, http.StatusOK, FeedKeysData{Form: emptyForm(), NewKey: key, NewName: k.Name})
}

func (s *Site) revokeFeedKey(w http.ResponseWriter, r *http.Request) {
	if err := s.deposits.RevokeFeedKey(r.Context(), currentStaff(r).Access, r.PathValue("id")); err != nil {
		s.answer(w, r, err)
		return
	}
	http.Redirect(w, r, "/facility/deposits/feed-keys?done=revoked", http.StatusSeeOther)
}
