package web

import (
	"errors"
	"mime/multipart"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/kinlink/kinlink/internal/contacts"
	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/ledger"
	"github.com/kinlink/kinlink/internal/media"
	"github.com/kinlink/kinlink/internal/messaging"
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
}

func (s *Site) messageRoutes(handle func(string, http.HandlerFunc)) {
	handle("GET /people/{id}/messages", s.requireLogin(s.conversationPage))
	handle("POST /people/{id}/messages", s.requireLogin(s.sendMessage))
	handle("GET /photos/{id}", s.withStaff(s.photo))
}

func (s *Site) renderConversation(w http.ResponseWriter, r *http.Request, status int, f *Form) {
	acct := currentAccount(r)
	id := r.PathValue("id")
	c, err := s.contacts.Get(r.Context(), acct.ID, id)
	if errors.Is(err, contacts.ErrNotFound) {
		s.Error(w, r, http.StatusNotFound)
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
		Balance: ledger.Dollars(balance), Form: f, Key: formKey(f), CanSend: qerr == nil, Sent: r.URL.Query().Get("sent") == "1"}
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
	// Five large photos from a phone on a weak signal take longer than the server's
	// usual minute to arrive.
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(media.UploadTime))
	var tooLarge *http.MaxBytesError
	if err := r.ParseMultipartForm(8 << 20); errors.As(err, &tooLarge) {
		s.Error(w, r, http.StatusRequestEntityTooLarge)
		return
	}
	f := newForm(r, "text", "prepaid_reply")
	acct := currentAccount(r)
	lang := s.Lang(r)
	var files []*multipart.FileHeader
	if r.MultipartForm != nil {
		files = r.MultipartForm.File["photos"]
	}
	prepaid, key := f.Values["prepaid_reply"] == "on", r.PostFormValue("key")
	// What can be refused without decoding the photos is refused first.
	err := s.messages.CheckPhotos(r.Context(), acct.ID, r.PathValue("id"), prepaid, len(files), key)
	var photos []media.Photo
	if err == nil {
		photos, err = media.ProcessUploads(files)
	}
	if err == nil {
		_, err = s.messages.Send(r.Context(), acct.ID, r.PathValue("id"), f.Values["text"], prepaid, key, photos...)
	}
	status := http.StatusBadRequest
	var bad *media.PhotoError
	switch {
	case errors.As(err, &bad):
		f.Message = s.cat.T(lang, photoProblem(bad.Err), bad.N, bad.Name) + " " + s.cat.T(lang, "photo.again")
		if errors.Is(bad.Err, media.ErrTooLarge) {
			status = http.StatusRequestEntityTooLarge
		} else if errors.Is(bad.Err, media.ErrNotImage) {
			status = http.StatusUnsupportedMediaType
		}
	case errors.Is(err, media.ErrTooManyPhotos):
		f.Message = s.cat.T(lang, "photo.too_many") + " " + s.cat.T(lang, "photo.again")
	case err == nil:
		http.Redirect(w, r, "/people/"+r.PathValue("id")+"/messages?sent=1#latest", http.StatusSeeOther)
		return
	case errors.Is(err, messaging.ErrNotFound):
		s.Error(w, r, http.StatusNotFound)
		return
	case errors.Is(err, messaging.ErrKeyReused):
		f.Message, status = s.cat.T(lang, "conversation.form_used"), http.StatusConflict
	case errors.Is(err, messaging.ErrNoFunds):
		f.Message, status = s.cat.T(lang, "conversation.no_funds"), http.StatusPaymentRequired
	case errors.Is(err, messaging.ErrTooLong):
		q, _ := s.messages.QuoteFor(r.Context(), acct.ID, r.PathValue("id"), false, 0)
		f.Message = s.cat.T(lang, "conversation.too_long", strconv.Itoa(q.MaxChars))
	case errors.Is(err, messaging.ErrEmpty):
		f.Message = s.cat.T(lang, "conversation.empty")
	case errors.Is(err, messaging.ErrBadText):
		f.Message = s.cat.T(lang, "conversation.bad_text")
	case errors.Is(err, messaging.ErrNotAllowed):
		f.Message, status = s.cat.T(lang, "conversation.not_allowed"), http.StatusForbidden
	case errors.Is(err, messaging.ErrNoPhotos):
		f.Message, status = s.cat.T(lang, "conversation.no_photos"), http.StatusForbidden
	default:
		// The database or the photo store failed. The family keeps the draft, and the
		// form keeps its key: if the message went through after all, sending again
		// cannot send it twice.
		s.log.Error("web: send", "err", err)
		f.Message, status = s.cat.T(lang, "conversation.failed"), http.StatusServiceUnavailable
		if len(files) > 0 {
			f.Message += " " + s.cat.T(lang, "photo.again")
		}
		f.Values["key"] = r.PostFormValue("key")
	}
	// What was typed stays in the form: a draft is never lost. (A browser cannot be
	// handed files back; the message says to choose the photos again.)
	s.renderConversation(w, r, status, f)
}

// photoProblem is the i18n key that explains why a photo was refused; each takes
// the photo's number and file name.
func photoProblem(err error) string {
	switch {
	case errors.Is(err, media.ErrTooLarge):
		return "photo.too_large"
	case errors.Is(err, media.ErrNotImage):
		return "photo.not_image"
	case errors.Is(err, media.ErrTooManyPixels):
		return "photo.too_many_pixels"
	default:
		return "photo.broken"
	}
}

// photo serves a message's photo to the family that sent it, a reviewer of its
// facility, or the resident signed in at a kiosk it was delivered to.
func (s *Site) photo(w http.ResponseWriter, r *http.Request) {
	var v messaging.Viewer
	if a := currentAccount(r); a != nil {
		v.AccountID = a.ID
	}
	if u := currentStaff(r); u != nil {
		v.Staff = &u.Access
	}
	// A photo the kiosk page loads is not the resident's doing: it does not keep
	// the session alive, and a session still owing its first PIN change sees none.
	if device, ok, _ := s.kioskDevice(r); ok {
		if sess, err := s.fac.KioskPeek(r.Context(), device, cookie(r, ResidentCookie)); err == nil && !sess.MustChange {
			v.ResidentID = sess.Resident.ID
		}
	}
	data, err := s.messages.Photo(r.Context(), v, r.PathValue("id"))
	switch {
	case errors.Is(err, messaging.ErrNotFound):
		s.Error(w, r, http.StatusNotFound)
	case err != nil:
		s.log.Error("web: photo", "err", err)
		s.Error(w, r, http.StatusInternalServerError)
	default:
		// Never cached: a kiosk is shared, and the next person must not find it.
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "image/jpeg")
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data)
	}
}
