package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/kinlink/kinlink/internal/deposits"
	"github.com/kinlink/kinlink/internal/identity"
)

// The trust-accounting feed: an agency's trust system reads, in order, every change
// deposits make to residents' trust accounts, with a key its finance office made in
// the portal (Authorization: Bearer klfeed_…). The key is the only way in: neither
// a family's token nor a staff member's opens the feed, and a key reads its own
// agency's rows alone.

type feedAgencyKey struct{}

// feedAuthenticated requires a live feed key. Anything else — no header, a family's
// or a staff member's token, a revoked or made-up key — is the same 401 as any
// missing authentication, so the answer tells nothing of what was sent.
func (a *API) feedAuthenticated(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			a.fail(w, r, identity.ErrUnauthenticated)
			return
		}
		agencyID, err := a.deposits.FeedAgency(r.Context(), strings.TrimSpace(key))
		if errors.Is(err, deposits.ErrBadFeedKey) {
			err = identity.ErrUnauthenticated
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), feedAgencyKey{}, agencyID)))
	}
}

// feedEntryJSON is one row of the feed as the trust system reads it.
type feedEntryJSON struct {
	Seq                int64      `json:"seq"`
	Kind               string     `json:"kind"`
	DepositID          string     `json:"deposit_id"`
	Confirmation       string     `json:"confirmation"`
	ResidentID         string     `json:"resident_id"` // the agency's own number for the person
	ResidentName       string     `json:"resident_name"`
	Facility           string     `json:"facility"` // the facility's code
	AmountCents        int64      `json:"amount_cents"`
	DepositAmountCents int64      `json:"deposit_amount_cents"`
	FeeCents           int64      `json:"fee_cents"`
	Sender             senderJSON `json:"sender"`
	Memo               string     `json:"memo"`
	Time               string     `json:"time"`
}

type senderJSON struct {
	Name    string `json:"name"`
	Address string `json:"address"`
}

// depositFeed is the agency's feed rows after ?since= (the next_cursor of the page
// before; absent: from the start), oldest first, at most ?limit= (1 to 500, 500
// when absent).
func (a *API) depositFeed(w http.ResponseWriter, r *http.Request) {
	agencyID := r.Context().Value(feedAgencyKey{}).(string)
	limit := deposits.MaxFeedPage
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > deposits.MaxFeedPage {
			a.errorWith(w, r, http.StatusBadRequest, ErrorDetail{Code: "invalid_request", Fields: map[string]string{"limit": "range"}})
			return
		}
		limit = n
	}
	since, err := deposits.ParseCursor(r.URL.Query().Get("since"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	rows, next, err := a.deposits.Feed(r.Context(), agencyID, since, limit)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	more := false
	if len(rows) == limit { // a full page: look whether a row follows it
		after, _, err := a.deposits.Feed(r.Context(), agencyID, next, 1)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		more = len(after) > 0
	}
	entries := make([]feedEntryJSON, 0, len(rows))
	for _, e := range rows {
		entries = append(entries, feedEntryJSON{Seq: e.Seq, Kind: e.Kind, DepositID: e.DepositID, Confirmation: e.Confirmation,
			ResidentID: e.ResidentNumber, ResidentName: e.ResidentName, Facility: e.FacilityCode, AmountCents: e.AmountCents,
			DepositAmountCents: e.DepositCents, FeeCents: e.FeeCents, Sender: senderJSON{Name: e.SenderName, Address: e.SenderAddress},
			Memo: e.Memo, Time: rfc3339(e.At)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": entries, "next_cursor": strconv.FormatInt(next, 10), "has_more": more})
}
