package api

import (
	"errors"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/kinlink/kinlink/internal/httpx"
	"github.com/kinlink/kinlink/internal/ledger"
	"github.com/kinlink/kinlink/internal/media"
	"github.com/kinlink/kinlink/internal/messaging"
)

// messageJSON is a message as the mobile app sees it.
type messageJSON struct {
	ID         string   `json:"id"`
	Direction  string   `json:"direction"`
	Kind       string   `json:"kind"`
	Text       string   `json:"text"`
	Photos     []string `json:"photos"`
	State      string   `json:"state"`
	Reason     string   `json:"reason,omitempty"`
	ReasonText string   `json:"reason_text,omitempty"`
	Note       string   `json:"note,omitempty"`
	CostStamps int      `json:"cost_stamps"`
	CostCents  int64    `json:"cost_cents"`
	// PrepaidReply is whether the message paid for the resident's reply.
	PrepaidReply bool      `json:"prepaid_reply"`
	CreatedAt    time.Time `json:"created_at"`
	// VideoGram is the clip of a message of kind videogram.
	VideoGram *videogramJSON `json:"videogram,omitempty"`
}

// messageOf shapes a message for the family whose language is lang.
func (a *API) messageOf(lang string, m messaging.Message) messageJSON {
	photos := make([]string, 0, len(m.Photos))
	for _, p := range m.Photos {
		photos = append(photos, "/api/v1/photos/"+p.ID)
	}
	j := messageJSON{ID: m.ID, Direction: m.Direction, Kind: m.Kind, Text: m.Text, Photos: photos, State: m.State, Reason: m.Reason, Note: m.Note,
		CostStamps: m.CostStamps, CostCents: m.CostCents, PrepaidReply: m.PrepaidReply, CreatedAt: m.CreatedAt}
	switch {
	case m.Reason == "":
	case m.ReasonWording.English != "":
		j.ReasonText = m.ReasonWording.In(lang)
	case m.Kind == messaging.VideoGram && m.State == messaging.Failed:
		// A VideoGram that failed says its clip's fault, as the web does.
		j.ReasonText = a.cat.T(lang, "videogram.fault."+m.Reason)
	default:
		j.ReasonText = a.cat.T(lang, "reject."+m.Reason)
	}
	return j
}

// quote is what a message to a contact would cost, and the agency's terms an app
// needs to show it while the family writes: the price of a stamp, the length limit,
// how many photos, and what a prepaid reply costs (nothing to prepay when replies are
// free).
func (a *API) quote(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Query().Get("kind") {
	case "", messaging.Text:
	case messaging.VideoGram:
		a.quoteVideoGram(w, r)
		return
	default:
		a.errorWith(w, r, http.StatusBadRequest, ErrorDetail{Code: "invalid_request", Fields: map[string]string{"kind": "invalid"}})
		return
	}
	photos := 0
	if v := r.URL.Query().Get("photos"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > media.MaxPhotos {
			a.errorWith(w, r, http.StatusBadRequest, ErrorDetail{Code: "invalid_request", Fields: map[string]string{"photos": "range"}})
			return
		}
		photos = n
	}
	prepaid, ok := a.prepaidReply(w, r, r.URL.Query().Get("prepaid_reply"))
	if !ok {
		return
	}
	acct := auth(r).account
	q, err := a.messages.QuoteFor(r.Context(), acct.ID, r.PathValue("id"), prepaid, photos)
	if err == nil && photos > q.MaxPhotos { // none allowed (the range is checked above): as the send would answer
		err = messaging.ErrNoPhotos
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	balance, err := a.wallets.Balance(r.Context(), acct.ID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"cost_stamps": q.Stamps, "cost_cents": q.Cents, "prepaid_reply": q.PrepaidReply,
		"stamp_cents": q.StampCents, "reply_stamps": q.ReplyStamps, "max_chars": q.MaxChars, "max_photos": q.MaxPhotos,
		"balance_cents": balance, "currency": ledger.Currency})
}

// quoteVideoGram is what a VideoGram to a contact would cost, and how long it may be.
func (a *API) quoteVideoGram(w http.ResponseWriter, r *http.Request) {
	prepaid, ok := a.prepaidReply(w, r, r.URL.Query().Get("prepaid_reply"))
	if !ok {
		return
	}
	acct := auth(r).account
	q, err := a.messages.QuoteVideoGram(r.Context(), acct.ID, r.PathValue("id"), prepaid)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	balance, err := a.wallets.Balance(r.Context(), acct.ID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"cost_stamps": q.Stamps, "cost_cents": q.Cents, "prepaid_reply": q.PrepaidReply,
		"stamp_cents": q.StampCents, "reply_stamps": q.ReplyStamps, "max_seconds": q.MaxSeconds,
		"balance_cents": balance, "currency": ledger.Currency})
}

// prepaidReply reads the prepaid_reply choice of a form or query.
func (a *API) prepaidReply(w http.ResponseWriter, r *http.Request, v string) (bool, bool) {
	if prepaid, ok := parsePrepaid(v); ok {
		return prepaid, true
	}
	a.errorWith(w, r, http.StatusBadRequest, ErrorDetail{Code: "invalid_request", Fields: map[string]string{"prepaid_reply": "invalid"}})
	return false, false
}

// parsePrepaid reads a prepaid_reply value; false when it is none of ours.
func parsePrepaid(v string) (prepaid, ok bool) {
	switch v {
	case "", "false", "0":
		return false, true
	case "true", "1", "on":
		return true, true
	}
	return false, false
}

// repliesRead is the app telling that the person saw the resident's replies.
func (a *API) repliesRead(w http.ResponseWriter, r *http.Request) {
	if err := a.messages.RepliesRead(r.Context(), auth(r).account.ID, r.PathValue("id"), ""); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// photo serves a photo of one of the family's own messages.
func (a *API) photo(w http.ResponseWriter, r *http.Request) {
	data, err := a.messages.Photo(r.Context(), messaging.Viewer{AccountID: auth(r).account.ID}, r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "private, max-age=86400, immutable")
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.Write(data)
}

func (a *API) listMessages(w http.ResponseWriter, r *http.Request) {
	limit := 50
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 100 {
			a.errorWith(w, r, http.StatusBadRequest, ErrorDetail{Code: "invalid_request", Fields: map[string]string{"limit": "range"}})
			return
		}
		limit = n
	}
	msgs, next, err := a.messages.Conversation(r.Context(), auth(r).account.ID, r.PathValue("id"), r.URL.Query().Get("cursor"), limit)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]messageJSON, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, a.messageOf(auth(r).account.Locale, m))
	}
	if err := a.clipsOf(r.Context(), msgs, out); err != nil {
		a.fail(w, r, err)
		return
	}
	body := map[string]any{"messages": out, "next_cursor": nil}
	if next != "" {
		body["next_cursor"] = next
	}
	writeJSON(w, http.StatusOK, body)
}

func (a *API) sendMessage(w http.ResponseWriter, r *http.Request) {
	key, ok := a.idempotencyKey(w, r)
	if !ok {
		return
	}
	acct, contact := auth(r).account, r.PathValue("id")
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "multipart/form-data":
	case "application/x-www-form-urlencoded":
		// Text alone, within the default body limit (httpx.LimitBody), read
		// already (httpx.CleanInput).
		if err := r.ParseForm(); err != nil {
			a.Error(w, r, http.StatusBadRequest, "invalid_request")
			return
		}
		a.send(w, r, key, nil)
		return
	default:
		a.Error(w, r, http.StatusUnsupportedMediaType, "unsupported_media_type")
		return
	}
	// Before any of the body is read: the contact, and a wallet that pays at least
	// for the text.
	if err := a.messages.CheckSend(r.Context(), acct.ID, contact, key, false, 0); err != nil {
		a.fail(w, r, err)
		return
	}
	done := func() {}
	defer func() { done() }()
	form, err := httpx.StreamForm(r, "photos", messageForm, func(n int) error {
		// Before each photo: the photos and the prepaid reply asked so far.
		prepaid, _ := parsePrepaid(r.PostFormValue("prepaid_reply"))
		if err := a.messages.CheckSend(r.Context(), acct.ID, contact, key, prepaid, n); err != nil || n > 1 {
			return err
		}
		var err error
		if done, err = a.messages.Uploading(acct.ID); err != nil {
			done = func() {}
			return err
		}
		httpx.AllowSlowUpload(w, media.UploadTime)
		return nil
	})
	defer form.RemoveAll()
	var tooLarge *http.MaxBytesError
	var fileTooLarge *httpx.FileTooLarge
	switch {
	case err == nil:
	case errors.As(err, &fileTooLarge):
		a.fail(w, r, &media.PhotoError{N: fileTooLarge.N, Name: fileTooLarge.Name, Err: media.ErrTooLarge})
		return
	case errors.As(err, &tooLarge):
		a.Error(w, r, http.StatusRequestEntityTooLarge, "payload_too_large")
		return
	case errors.Is(err, httpx.ErrFieldsTooLarge):
		// Besides the photos, only the text can be large.
		a.errorWith(w, r, http.StatusRequestEntityTooLarge, ErrorDetail{Code: "payload_too_large", Fields: map[string]string{"text": "too_long"}})
		return
	case errors.Is(err, httpx.ErrBadForm):
		a.Error(w, r, http.StatusBadRequest, "invalid_request")
		return
	default: // a refusal before a photo, or a failure
		a.fail(w, r, err)
		return
	}
	a.send(w, r, key, form.Files)
}

// messageForm bounds a message's form: the text and the few small fields, and
// photos of up to media.MaxPhotoBytes each, kept in memory up to 8 MB together.
var messageForm = httpx.FormLimits{Fields: 1 << 20, File: media.MaxPhotoBytes, Memory: 8 << 20}

// send sends the message of a form read.
func (a *API) send(w http.ResponseWriter, r *http.Request, key string, photos []media.Upload) {
	prepaid, ok := a.prepaidReply(w, r, r.PostFormValue("prepaid_reply"))
	if !ok {
		return
	}
	m, err := a.messages.Send(r.Context(), auth(r).account.ID, r.PathValue("id"), messaging.Draft{
		Text: r.PostFormValue("text"), PrepaidReply: prepaid, Key: key, Photos: photos})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, a.messageOf(auth(r).account.Locale, m))
}
