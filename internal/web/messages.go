package web

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/kinlink/kinlink/internal/contacts"
	"github.com/kinlink/kinlink/internal/httpx"
	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/ledger"
	"github.com/kinlink/kinlink/internal/media"
	"github.com/kinlink/kinlink/internal/messaging"
	"github.com/kinlink/kinlink/internal/problem"
	"github.com/kinlink/kinlink/internal/videogram"
)

// A family's conversation with one of their people: the messages, newest at the
// bottom, each with its state and cost, and the form to write.

// ConversationData is the conversation page.
type ConversationData struct {
	Contact  contacts.Contact
	Messages []messaging.Message
	Older    string // cursor of the page before, if any
	Quote    messaging.Quote
	Price    string // one stamp in dollars
	Balance  string
	Form     *Form
	Key      string
	CanSend  bool
	Sent     bool
	// NeedsMoney offers the wallet, which comes back here (Back) to the kept draft.
	NeedsMoney bool
	Back       string
	// VideoGram is the form to send one, where this person may receive them;
	// Clips are the conversation's clips by message id.
	VideoGram *VideoGramSection
	Clips     map[string]videogram.Clip
}

func (s *Site) renderConversation(w http.ResponseWriter, r *http.Request, status int, f *Form) {
	s.conversation(w, r, status, f, emptyForm())
}

// conversation renders the page with the message form f and the VideoGram form vf.
func (s *Site) conversation(w http.ResponseWriter, r *http.Request, status int, f, vf *Form) {
	acct := currentAccount(r)
	id := r.PathValue("id")
	c, err := s.contacts.Get(r.Context(), acct.ID, id)
	if err != nil {
		s.answer(w, r, err)
		return
	}
	msgs, older, err := s.messages.Conversation(r.Context(), acct.ID, id, r.URL.Query().Get("before"), 50)
	if err != nil {
		s.log.Error("web: conversation", "err", err)
		s.Error(w, r, http.StatusInternalServerError)
		return
	}
	// The family now sees the newest replies: they show as new this once, and the
	// resident sees them read.
	if r.URL.Query().Get("before") == "" && slices.ContainsFunc(msgs, func(m messaging.Message) bool { return m.State == messaging.Sent }) {
		if err := s.messages.RepliesRead(r.Context(), acct.ID, id, msgs[len(msgs)-1].ID); err != nil {
			s.log.Error("web: replies read", "err", err)
		}
	}
	balance, err := s.wallets.Balance(r.Context(), acct.ID)
	if err != nil {
		s.Error(w, r, http.StatusInternalServerError)
		return
	}
	q, qerr := s.messages.QuoteFor(r.Context(), acct.ID, id, f.Values["prepaid_reply"] == "on", 0)
	d := ConversationData{Contact: c, Messages: msgs, Older: older, Quote: q, Price: ledger.Dollars(int64(q.StampCents)),
		Balance: ledger.Dollars(balance), Form: f, Key: formKey(f), CanSend: qerr == nil, Sent: r.URL.Query().Get("sent") == "1",
		NeedsMoney: status == http.StatusPaymentRequired, Back: "/people/" + c.ID + "/messages#write",
		VideoGram: s.videogramSection(r, c.ID, vf), Clips: s.clips(r, msgs)}
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, status, "conversation", "conversation.title", d)
}

// formKey is the idempotency key of the next send from this page: a new one, or
// the one of an attempt that failed for reasons of ours (see sendMessage).
func formKey(f *Form) string {
	if k := f.Values["key"]; ids.Valid(k) {
		return k
	}
	return ids.New()
}

func (s *Site) conversationPage(w http.ResponseWriter, r *http.Request) {
	s.renderConversation(w, r, http.StatusOK, emptyForm())
}

func (s *Site) sendMessage(w http.ResponseWriter, r *http.Request) {
	acct, contact := currentAccount(r), r.PathValue("id")
	// What was typed stays in the form: a draft is never lost. A browser cannot be
	// handed files back, so the message says to choose the photos again.
	chosePhotos := false
	again := func(status int, f *Form) {
		if chosePhotos {
			f.Message = strings.TrimSpace(f.Message + " " + s.cat.T(s.Lang(r), "photo.again"))
		}
		s.renderConversation(w, r, status, f)
	}
	// Before any of the body is read: the contact (the page of a contact that
	// cannot receive messages shows no form to keep a draft in).
	if _, err := s.messages.QuoteFor(r.Context(), acct.ID, contact, false, 0); err != nil {
		s.refuse(w, r, emptyForm(), err, again)
		return
	}
	// Then the form as it arrives: the key and the text come first, and before
	// each photo the wallet must hold its price, so a send that cannot go is
	// answered before its photos are received.
	done := func() {}
	defer func() { done() }()
	var photos []media.Upload
	form, err := httpx.StreamForm(r, "photos", messageForm, func(n int) error {
		chosePhotos = true
		err := s.messages.CheckSend(r.Context(), acct.ID, contact, r.PostFormValue("key"), r.PostFormValue("prepaid_reply") == "on", n)
		if err != nil || n > 1 {
			return err
		}
		if done, err = s.messages.Uploading(acct.ID); err != nil {
			done = func() {}
			return err
		}
		httpx.AllowSlowUpload(w, media.UploadTime)
		return nil
	})
	defer form.RemoveAll()
	if errors.Is(err, http.ErrNotMultipart) { // a form without files, sent without them
		err = r.ParseForm()
	}
	var tooLarge *http.MaxBytesError
	var fileTooLarge *httpx.FileTooLarge
	switch {
	case err == nil:
		photos = form.Files
	case errors.As(err, &fileTooLarge):
		err = &media.PhotoError{N: fileTooLarge.N, Name: fileTooLarge.Name, Err: media.ErrTooLarge}
	case errors.As(err, &tooLarge), errors.Is(err, httpx.ErrFieldsTooLarge):
		s.Error(w, r, http.StatusRequestEntityTooLarge)
		return
	case errors.Is(err, httpx.ErrBadForm): // broken off (the page is gone) or not a browser's
		s.Error(w, r, http.StatusBadRequest)
		return
	}
	f := newForm(r, "text", "prepaid_reply")
	if err == nil {
		_, err = s.messages.Send(r.Context(), acct.ID, contact, messaging.Draft{
			Text: f.Values["text"], PrepaidReply: f.Values["prepaid_reply"] == "on", Key: r.PostFormValue("key"), Photos: photos})
		if err == nil {
			http.Redirect(w, r, "/people/"+contact+"/messages?sent=1#latest", http.StatusSeeOther)
			return
		}
	}
	if _, refused := problem.As(err); !refused && !errors.Is(err, context.Canceled) {
		// The database or the photo store failed. The family
		// keeps the draft, and the form keeps its key: if the message went through
		// after all, sending again cannot send it twice.
		s.log.Error("web: send", "err", err, "request_id", httpx.RequestID(r.Context()))
		f.Message = s.cat.T(s.Lang(r), "conversation.failed")
		f.Values["key"] = r.PostFormValue("key")
		again(http.StatusServiceUnavailable, f)
		return
	}
	s.refuse(w, r, f, err, again)
}

// messageForm bounds a message's form: the key, the text and the reply choice,
// and photos of up to media.MaxPhotoBytes each, kept in memory up to 8 MB together.
var messageForm = httpx.FormLimits{Fields: 1 << 20, File: media.MaxPhotoBytes, Memory: 8 << 20}

// photo serves a message's photo to the family that sent it, a reviewer of its
// facility, or the resident signed in at a kiosk it was delivered to.
func (s *Site) photo(w http.ResponseWriter, r *http.Request) {
	data, err := s.messages.Photo(r.Context(), s.viewer(r), r.PathValue("id"))
	if err != nil {
		s.answer(w, r, err)
		return
	}
	// Never cached: a kiosk is shared, and the next person must not find it.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.Write(data)
}
