package web

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/i18n"
	"github.com/kinlink/kinlink/internal/messaging"
	"github.com/kinlink/kinlink/internal/videogram"
)

// The portal's message review: the queue of messages the agency sends to a person
// first (everything, or those with a watch-list phrase), one message opened at a
// time (the read is audited), and approve or reject with a reason.

// ReviewQueueData is the review queue page.
type ReviewQueueData struct {
	Items    []messaging.ReviewItem
	Previews int // how many of the oldest show their start
	Done     string
	Settings *Form // review settings, for agency admins
	CanSet   bool
	// Reasons is the agency's list of reasons to reject with, retired ones too, and
	// ReasonForm adds one; both for agency admins.
	Reasons    []messaging.RejectReason
	ReasonForm *Form
	Clips      map[string]videogram.Clip // the VideoGrams', by message id
	VideoGrams bool                      // offered: their settings are shown
}

// ReviewItemData is one opened message.
type ReviewItemData struct {
	Item    messaging.ReviewItem
	Reasons []messaging.RejectReason
	Form    *Form
	Done    string          // what happened to the message decided before this one
	Clip    *videogram.Clip // when the message is a VideoGram
}

func (s *Site) reviewQueue(w http.ResponseWriter, r *http.Request) {
	s.renderReviewQueue(w, r, http.StatusOK, emptyForm(), emptyForm())
}

func (s *Site) renderReviewQueue(w http.ResponseWriter, r *http.Request, status int, settings, reasonForm *Form) {
	u := currentStaff(r)
	if !messaging.CanReview(u.Access) {
		s.Error(w, r, http.StatusForbidden)
		return
	}
	items, err := s.messages.Queue(r.Context(), u.Access)
	if err != nil {
		s.log.Error("web: review queue", "err", err)
		s.Error(w, r, http.StatusInternalServerError)
		return
	}
	d := ReviewQueueData{Items: items, Previews: messaging.QueuePreviews, Settings: settings, CanSet: u.Access.Has(facility.AgencyAdmin, ""), ReasonForm: reasonForm,
		VideoGrams: s.offers.Has(facility.VideoGrams)}
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.ID
	}
	d.Clips = s.clipsOf(r, ids)
	if d.CanSet {
		if d.Reasons, err = s.messages.Reasons(r.Context(), u.Access.AgencyID, true); err != nil {
			s.log.Error("web: reject reasons", "err", err)
			s.Error(w, r, http.StatusInternalServerError)
			return
		}
	}
	if d.CanSet && len(settings.Values) == 0 {
		rs, err := s.messages.Review(r.Context(), u.Access.AgencyID)
		if err != nil {
			s.log.Error("web: review settings", "err", err)
			s.Error(w, r, http.StatusInternalServerError)
			return
		}
		settings.Values = map[string]string{"review_all": strconv.FormatBool(rs.ReviewAll), "watch": strings.Join(rs.Phrases, "\n"),
			"reply_price_stamps": strconv.Itoa(rs.ReplyStamps), "videogram_stamps": strconv.Itoa(rs.VideoGramStamps),
			"review_videograms": strconv.FormatBool(rs.ReviewVideoGrams), "videogram_retention_days": strconv.Itoa(rs.VideoGramRetentionDays),
			"videogram_replies": strconv.FormatBool(rs.VideoGramReplies)}
	}
	switch done := r.URL.Query().Get("done"); done {
	case "approved", "rejected", "settings", "reasons", "approved_last", "rejected_last":
		d.Done = "review.done." + done
	}
	s.renderPortal(w, r, status, "portal_review", "review.title", d)
}

func (s *Site) saveReviewSettings(w http.ResponseWriter, r *http.Request) {
	f := newForm(r, "watch", "reply_price_stamps", "videogram_stamps", "videogram_retention_days")
	f.Values["review_all"] = strconv.FormatBool(r.PostFormValue("review_all") == "on")
	reply, perr := 0, error(nil) // an empty price is free replies
	if v := strings.TrimSpace(f.Values["reply_price_stamps"]); v != "" {
		reply, perr = strconv.Atoi(v)
	}
	if perr != nil {
		reply = -1
	}
	settings := messaging.ReviewSettings{ReviewAll: f.Values["review_all"] == "true", Phrases: strings.Split(f.Values["watch"], "\n"), ReplyStamps: reply}
	if s.offers.Has(facility.VideoGrams) && r.PostFormValue("videogram_settings") != "" {
		// A number that is not one is out of range, and said so on its field.
		settings.VideoGramStamps, settings.VideoGramRetentionDays = wholeOr(f.Values["videogram_stamps"], -1), wholeOr(f.Values["videogram_retention_days"], -1)
		f.Values["review_videograms"] = strconv.FormatBool(r.PostFormValue("review_videograms") == "on")
		settings.ReviewVideoGrams = f.Values["review_videograms"] == "true"
		f.Values["videogram_replies"] = strconv.FormatBool(r.PostFormValue("videogram_replies") == "on")
		settings.VideoGramReplies = f.Values["videogram_replies"] == "true"
	} else {
		// Not offered, or a form without them: the stored ones stay.
		was, err := s.messages.Review(r.Context(), currentStaff(r).Access.AgencyID)
		if err != nil {
			s.log.Error("web: review settings", "err", err)
			s.Error(w, r, http.StatusInternalServerError)
			return
		}
		settings.VideoGramStamps, settings.ReviewVideoGrams, settings.VideoGramRetentionDays = was.VideoGramStamps, was.ReviewVideoGrams, was.VideoGramRetentionDays
		settings.VideoGramReplies = was.VideoGramReplies
	}
	err := s.messages.SetReview(r.Context(), currentStaff(r).Access, settings)
	if err != nil {
		s.refuse(w, r, f, err, func(status int, f *Form) { s.renderReviewQueue(w, r, status, f, emptyForm()) })
		return
	}
	http.Redirect(w, r, "/facility/review?done=settings", http.StatusSeeOther)
}

// wholeOr reads a whole number a person typed, or gives bad.
func wholeOr(v string, bad int) int {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return bad
	}
	return n
}

func (s *Site) addRejectReason(w http.ResponseWriter, r *http.Request) {
	f := newForm(r, "reason_english", "reason_spanish")
	var builtIn []string
	for _, code := range messaging.BuiltInReasons() {
		for _, lang := range i18n.Supported() {
			builtIn = append(builtIn, s.cat.T(lang, "reject."+code))
		}
	}
	_, err := s.messages.AddReason(r.Context(), currentStaff(r).Access, f.Values["reason_english"], f.Values["reason_spanish"], builtIn...)
	s.afterReasonChange(w, r, f, err)
}

func (s *Site) retireRejectReason(w http.ResponseWriter, r *http.Request) {
	err := s.messages.RetireReason(r.Context(), currentStaff(r).Access, r.PathValue("code"), r.PostFormValue("action") != "restore")
	s.afterReasonChange(w, r, emptyForm(), err)
}

// afterReasonChange answers a change of the reason list: back to the list, or the
// list again with what went wrong and what was typed.
func (s *Site) afterReasonChange(w http.ResponseWriter, r *http.Request, f *Form, err error) {
	if err != nil {
		s.refuse(w, r, f, err, func(status int, f *Form) { s.renderReviewQueue(w, r, status, emptyForm(), f) })
		return
	}
	http.Redirect(w, r, "/facility/review?done=reasons#reject-reasons-title", http.StatusSeeOther)
}

func (s *Site) reviewItem(w http.ResponseWriter, r *http.Request) {
	s.renderReviewItem(w, r, http.StatusOK, emptyForm())
}

func (s *Site) renderReviewItem(w http.ResponseWriter, r *http.Request, status int, f *Form) {
	it, err := s.messages.Open(r.Context(), currentStaff(r).Access, r.PathValue("id"))
	if err != nil {
		s.answer(w, r, err)
		return
	}
	reasons, err := s.messages.Reasons(r.Context(), currentStaff(r).Access.AgencyID, false)
	if err != nil {
		s.log.Error("web: reject reasons", "err", err)
		s.Error(w, r, http.StatusInternalServerError)
		return
	}
	d := ReviewItemData{Item: it, Reasons: reasons, Form: f}
	if c, ok := s.clipsOf(r, []string{it.ID})[it.ID]; ok {
		d.Clip = &c
	}
	if done := r.URL.Query().Get("done"); done == "approved" || done == "rejected" {
		d.Done = "review.done." + done + "_next"
	}
	s.renderPortal(w, r, status, "portal_review_item", "review.item_title", d)
}

func (s *Site) decideMessage(w http.ResponseWriter, r *http.Request) {
	f := newForm(r, "reason", "note")
	lang := s.Lang(r)
	decision := r.PostFormValue("decision")
	if decision != "approve" && decision != "reject" {
		f.Message = s.cat.T(lang, "review.choose_decision")
		s.renderReviewItem(w, r, http.StatusBadRequest, f)
		return
	}
	approve := decision == "approve"
	access := currentStaff(r).Access
	if err := s.messages.Decide(r.Context(), access, r.PathValue("id"), approve, f.Values["reason"], f.Values["note"]); err != nil {
		s.refuse(w, r, f, err, func(status int, f *Form) { s.renderReviewItem(w, r, status, f) })
		return
	}
	done := "approved"
	if !approve {
		done = "rejected"
	}
	// "… and next" (the buttons post to ?next=1) opens the next message waiting,
	// or comes back to the queue saying none is left.
	if r.URL.Query().Get("next") != "1" {
		http.Redirect(w, r, "/facility/review?done="+done, http.StatusSeeOther)
		return
	}
	next, err := s.messages.NextInQueue(r.Context(), access, r.PathValue("id"))
	switch {
	case err != nil:
		// The decision is made; only the way on failed.
		s.log.Error("web: next in review queue", "err", err)
		http.Redirect(w, r, "/facility/review?done="+done, http.StatusSeeOther)
	case next == "":
		http.Redirect(w, r, "/facility/review?done="+done+"_last", http.StatusSeeOther)
	default:
		http.Redirect(w, r, "/facility/review/"+next+"?done="+done, http.StatusSeeOther)
	}
}
