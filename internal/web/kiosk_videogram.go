package web

import (
	"context"
	"net/http"

	"github.com/kinlink/kinlink/internal/media"
	"github.com/kinlink/kinlink/internal/messaging"
	"github.com/kinlink/kinlink/internal/problem"
)

// VideoGram replies at the kiosk: where the agency allows them, a resident records
// a clip with the kiosk's camera (videogram.js, the family's recorder without the
// file picker), which is uploaded as a family's is (under /kiosk/uploads/, as the
// resident's own), then sent for review.

// KioskVideoGramReply is the thread's "Record a VideoGram" section.
type KioskVideoGramReply struct {
	Allowed    bool // false: the section only says why a reply was refused
	MaxSeconds int
	Form       *Form
	Key        string
	MaxBytes   int64
}

type residentKey struct{}

// kioskUploader lets a resident signed in at this kiosk send an upload (their
// own: media.ResidentOwner); anyone else goes to the kiosk's sign-in.
func (s *Site) kioskUploader(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d, ok := s.kioskSession(w, r)
		if !ok {
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), residentKey{}, d.Session.Resident.ID)))
	}
}

// kioskUploads is whose a kiosk's upload is: the resident's (kioskUploader).
func kioskUploads(ctx context.Context) string {
	id, _ := ctx.Value(residentKey{}).(string)
	return media.ResidentOwner(id)
}

// familyUploads is whose a family's upload is: the signed-in account's.
func familyUploads(ctx context.Context) string {
	if si, ok := ctx.Value(accountKey{}).(signedIn); ok {
		return si.account.ID
	}
	return ""
}

// kioskVideoGramSection is the thread's VideoGram reply section, where the
// resident may record one (nil elsewhere, unless f says why one was refused).
func (s *Site) kioskVideoGramSection(r *http.Request, residentID, contactID string, f *Form) *KioskVideoGramReply {
	if s.uploads == nil {
		return nil
	}
	seconds, err := s.messages.VideoGramReply(r.Context(), residentID, contactID)
	if _, refused := problem.As(err); err != nil && !refused {
		s.log.Error("web: kiosk videogram reply", "err", err)
	}
	if err != nil && f.Message == "" {
		return nil // not allowed here: the section is not shown
	}
	return &KioskVideoGramReply{Allowed: err == nil, MaxSeconds: seconds, Form: f, Key: formKey(f), MaxBytes: s.uploads.MaxBytes()}
}

// kioskVideoGramReply sends the clip the kiosk's script uploaded as the resident's
// reply, for review.
func (s *Site) kioskVideoGramReply(w http.ResponseWriter, r *http.Request) {
	d, ok := s.kioskSession(w, r)
	if !ok {
		return
	}
	if s.uploads == nil {
		s.Error(w, r, http.StatusNotFound)
		return
	}
	f := newForm(r, "upload_id", "key", "from_trust")
	contact := r.PathValue("contact")
	_, err := s.messages.ReplyVideoGram(r.Context(), d.Session.Resident.ID, contact,
		messaging.VideoGramReplyDraft{UploadID: f.Values["upload_id"], Key: f.Values["key"], FromTrust: fromTrust(f)})
	if err != nil {
		s.refuse(w, r, f, err, func(status int, f *Form) { s.renderKioskThread(w, r, status, emptyForm(), f) })
		return
	}
	http.Redirect(w, r, "/kiosk/messages/"+contact+"#latest", http.StatusSeeOther)
}
