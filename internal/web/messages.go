package web

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/kinlink/kinlink/internal/contacts"
	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/ledger"
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
	balance, err := s.wallets.Balance(r.Context(), acct.ID)
	if err != nil {
		s.Error(w, r, http.StatusInternalServerError)
		return
	}
	q, qerr := s.messages.QuoteFor(r.Context(), acct.ID, id, f.Values["prepaid_reply"] == "on")
	d := ConversationData{Contact: c, Messages: msgs, Older: older, Quote: q, Price: ledger.Dollars(int64(q.StampCents)),
		Balance: ledger.Dollars(balance), Form: f, Key: ids.New(), CanSend: qerr == nil, Sent: r.URL.Query().Get("sent") == "1"}
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, status, "conversation", "conversation.title", d)
}

func (s *Site) conversationPage(w http.ResponseWriter, r *http.Request) {
	s.renderConversation(w, r, http.StatusOK, emptyForm())
}

func (s *Site) sendMessage(w http.ResponseWriter, r *http.Request) {
	f := newForm(r, "text", "prepaid_reply")
	acct := currentAccount(r)
	_, err := s.messages.Send(r.Context(), acct.ID, r.PathValue("id"), f.Values["text"], f.Values["prepaid_reply"] == "on", r.PostFormValue("key"))
	lang := s.Lang(r)
	status := http.StatusBadRequest
	switch {
	case err == nil:
		http.Redirect(w, r, "/people/"+r.PathValue("id")+"/messages?sent=1#latest", http.StatusSeeOther)
		return
	case errors.Is(err, messaging.ErrNotFound):
		s.Error(w, r, http.StatusNotFound)
		return
	case errors.Is(err, messaging.ErrNoFunds):
		f.Message, status = s.cat.T(lang, "conversation.no_funds"), http.StatusPaymentRequired
	case errors.Is(err, messaging.ErrTooLong):
		q, _ := s.messages.QuoteFor(r.Context(), acct.ID, r.PathValue("id"), false)
		f.Message = s.cat.T(lang, "conversation.too_long", strconv.Itoa(q.MaxChars))
	case errors.Is(err, messaging.ErrEmpty):
		f.Message = s.cat.T(lang, "conversation.empty")
	case errors.Is(err, messaging.ErrBadText):
		f.Message = s.cat.T(lang, "conversation.bad_text")
	case errors.Is(err, messaging.ErrNotAllowed):
		f.Message, status = s.cat.T(lang, "conversation.not_allowed"), http.StatusForbidden
	default:
		s.log.Error("web: send", "err", err)
		s.Error(w, r, http.StatusInternalServerError)
		return
	}
	// What was typed stays in the form: a draft is never lost.
	s.renderConversation(w, r, status, f)
}
