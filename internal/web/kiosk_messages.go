package web

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/kinlink/kinlink/internal/deposits"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/messaging"
	"github.com/kinlink/kinlink/internal/videogram"
)

// Messages at the kiosk: the resident opens a conversation (its messages become
// read), replies, and an open kiosk page learns of new mail without a reload.

// KioskThreadData is one conversation at the kiosk.
type KioskThreadData struct {
	Conversation messaging.Conversation
	Messages     []messaging.Message
	Form         *Form
	Key          string
	MaxChars     int
	ReplyStamps  int                       // what a reply costs; 0 where replies are free
	Prepaid      int                       // replies the family has paid for, not yet used
	Trust        *KioskReplyTrust          // where the resident may pay for a reply from trust money
	Clips        map[string]videogram.Clip // the VideoGrams' clips, by message id
	VideoGram    *KioskVideoGramReply      // where the resident may record a VideoGram reply
}

// Payable says whether a reply can be paid for as things stand: replies are free,
// the family prepaid one, or the resident's trust money covers it (if they choose
// to use it). The VideoGram recorder is offered only then: a clip is not recorded
// to be refused.
func (t KioskThreadData) Payable() bool {
	return t.ReplyStamps == 0 || t.Prepaid > 0 || (t.Trust != nil && t.Trust.Covers())
}

// KioskReplyTrust is the choice to pay for a reply from the resident's trust
// money, with what it costs and what they have, shown before they send.
type KioskReplyTrust struct {
	PriceCents   int64
	BalanceCents int64
}

// Covers says whether the trust money pays for a reply; where it does not, the
// page says so instead of offering the choice.
func (t KioskReplyTrust) Covers() bool { return t.BalanceCents >= t.PriceCents }

// fromTrust is the resident's choice, on a reply form, to pay from trust money.
func fromTrust(f *Form) bool { return f.Values["from_trust"] == "on" }

// background reports a page's own fetch for fresh content (kinlink.js), as opposed
// to the resident's navigation: it must not keep the session alive or mark anything
// read.
func background(r *http.Request) bool { return r.Header.Get("X-Kiosk-Background") == "1" }

// kioskSession is the signed-in resident of this kiosk, or a redirect to /kiosk.
func (s *Site) kioskSession(w http.ResponseWriter, r *http.Request) (KioskData, bool) {
	device, ok, err := s.kioskDevice(r)
	if err != nil {
		s.Error(w, r, http.StatusServiceUnavailable)
		return KioskData{}, false
	}
	if ok {
		lookup := s.fac.KioskResident
		if background(r) {
			lookup = s.fac.KioskPeek
		}
		sess, err := lookup(r.Context(), device, cookie(r, ResidentCookie))
		if err == nil && !sess.MustChange {
			return KioskData{Device: device, Session: &sess, Form: emptyForm()}, true
		}
	}
	http.Redirect(w, r, "/kiosk", http.StatusSeeOther)
	return KioskData{}, false
}

func (s *Site) kioskThread(w http.ResponseWriter, r *http.Request) {
	s.renderKioskThread(w, r, http.StatusOK, emptyForm(), emptyForm())
}

// renderKioskThread shows a conversation with its reply form f and its VideoGram
// reply form vf (each keeps what it was sent with, and says what was wrong).
func (s *Site) renderKioskThread(w http.ResponseWriter, r *http.Request, status int, f, vf *Form) {
	d, ok := s.kioskSession(w, r)
	if !ok {
		return
	}
	residentID, contactID := d.Session.Resident.ID, r.PathValue("contact")
	msgs, err := s.messages.Thread(r.Context(), residentID, contactID, !background(r))
	if err != nil {
		s.answer(w, r, err)
		return
	}
	inbox, ierr := s.messages.Inbox(r.Context(), residentID)
	q, qerr := s.messages.ResidentQuote(r.Context(), residentID)
	price, perr := s.messages.ReplyPrice(r.Context(), residentID, contactID)
	var trust *KioskReplyTrust
	var terr error
	if price.FromTrust && s.deposits != nil {
		var t deposits.Trust
		t, terr = s.deposits.TrustOf(r.Context(), d.Session.Resident, 0)
		trust = &KioskReplyTrust{PriceCents: price.Cents, BalanceCents: t.BalanceCents}
	}
	if err = errors.Join(err, ierr, qerr, perr, terr); err != nil {
		s.log.Error("web: kiosk thread", "err", err)
		s.Error(w, r, http.StatusInternalServerError)
		return
	}
	t := KioskThreadData{Messages: msgs, Form: f, Key: ids.New(), MaxChars: q.MaxChars, ReplyStamps: price.Stamps, Prepaid: price.Prepaid, Trust: trust,
		Clips: s.clips(r, msgs), VideoGram: s.kioskVideoGramSection(r, residentID, contactID, vf)}
	for _, c := range inbox {
		if c.ContactID == contactID {
			t.Conversation = c
		}
	}
	d.Thread = &t
	s.renderKiosk(w, r, status, "kiosk_thread", d)
}

func (s *Site) kioskReply(w http.ResponseWriter, r *http.Request) {
	d, ok := s.kioskSession(w, r)
	if !ok {
		return
	}
	f := newForm(r, "text", "from_trust")
	_, err := s.messages.Reply(r.Context(), d.Session.Resident.ID, r.PathValue("contact"),
		messaging.ReplyDraft{Text: f.Values["text"], Key: r.PostFormValue("key"), FromTrust: fromTrust(f)})
	if err != nil {
		s.refuse(w, r, f, err, func(status int, f *Form) { s.renderKioskThread(w, r, status, f, emptyForm()) })
		return
	}
	http.Redirect(w, r, "/kiosk/messages/"+r.PathValue("contact")+"#latest", http.StatusSeeOther)
}

// kioskLatest answers an open kiosk page's check for new messages: at once without
// "after", else when the inbox differs from "after" (or after a quiet while). It
// does not keep the session alive: only a person at the screen does that.
func (s *Site) kioskLatest(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	device, ok, err := s.kioskDevice(r)
	if err != nil { // the page asks again in a while
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var sess facility.KioskSession
	err = facility.ErrBadLogin
	if ok {
		sess, err = s.fac.KioskPeek(r.Context(), device, cookie(r, ResidentCookie))
	}
	if err != nil {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var latest string
	if after := r.URL.Query().Get("after"); after != "" {
		latest, err = s.messages.WaitForNews(r.Context(), sess.Resident.ID, after)
	} else {
		latest, err = s.messages.Latest(r.Context(), sess.Resident.ID)
	}
	if err != nil {
		s.log.Error("web: kiosk latest", "err", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"latest": latest})
}

// KioskPhoto is one photo of a conversation, shown on a page of its own.
type KioskPhoto struct {
	ContactID, MessageID string
	Photo                messaging.PhotoRef
	Index, Of            int // photo Index (from 0) of the message's Of
}

// kioskPhoto shows one photo of the resident's conversation full screen, inside the
// kiosk, with a way back to it. The thread's script opens photos in a dialog over
// the page instead; this page is where the photo's link leads without it.
func (s *Site) kioskPhoto(w http.ResponseWriter, r *http.Request) {
	d, ok := s.kioskSession(w, r)
	if !ok {
		return
	}
	contactID, photoID := r.PathValue("contact"), r.PathValue("photo")
	msgs, err := s.messages.Thread(r.Context(), d.Session.Resident.ID, contactID, false)
	if err != nil {
		s.answer(w, r, err)
		return
	}
	for _, m := range msgs {
		for i, p := range m.Photos {
			if p.ID == photoID {
				d.Photo = &KioskPhoto{ContactID: contactID, MessageID: m.ID, Photo: p, Index: i, Of: len(m.Photos)}
				s.renderKiosk(w, r, http.StatusOK, "kiosk_photo", d)
				return
			}
		}
	}
	s.Error(w, r, http.StatusNotFound)
}

// KioskVideo is one VideoGram of a conversation, played on a page of its own.
type KioskVideo struct {
	ContactID string
	Clip      videogram.Clip
}

// kioskVideo plays a VideoGram full screen inside the kiosk, with a way back. The
// thread's script plays it in a dialog over the page instead; this page is where
// its link leads without the script (the video's request marks it watched).
func (s *Site) kioskVideo(w http.ResponseWriter, r *http.Request) {
	d, ok := s.kioskSession(w, r)
	if !ok {
		return
	}
	contactID, id := r.PathValue("contact"), r.PathValue("id")
	msgs, err := s.messages.Thread(r.Context(), d.Session.Resident.ID, contactID, false)
	if err != nil {
		s.answer(w, r, err)
		return
	}
	for _, m := range msgs {
		if m.ID == id && m.Kind == messaging.VideoGram {
			if c, ok := s.clips(r, []messaging.Message{m})[id]; ok && c.State == videogram.Ready {
				d.Video = &KioskVideo{ContactID: contactID, Clip: c}
				s.renderKiosk(w, r, http.StatusOK, "kiosk_video", d)
				return
			}
		}
	}
	s.Error(w, r, http.StatusNotFound)
}
