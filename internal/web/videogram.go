package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"time"

	"github.com/kinlink/kinlink/internal/httpx"
	"github.com/kinlink/kinlink/internal/ledger"
	"github.com/kinlink/kinlink/internal/messaging"
	"github.com/kinlink/kinlink/internal/problem"
	"github.com/kinlink/kinlink/internal/videogram"
)

// VideoGrams on the web: a family records or chooses a clip in a conversation
// (videogram.js sends it with the resumable upload; without the script the form
// posts the file), the clip plays for the family, its reviewers and the resident,
// and the kiosk marks it watched when the resident plays it.

// videoUploadTime is how long a form carrying a whole clip may take to arrive.
const videoUploadTime = 30 * time.Minute

// VideoGramSection is the conversation's "Record a VideoGram" form.
type VideoGramSection struct {
	Quote    messaging.VideoGramQuote
	Price    string // one stamp in dollars
	Form     *Form
	Key      string
	MaxBytes int64
}

// clips returns the clips of msgs by message id (none where VideoGrams are off).
func (s *Site) clips(r *http.Request, msgs []messaging.Message) map[string]videogram.Clip {
	var ids []string
	for _, m := range msgs {
		if m.Kind == messaging.VideoGram {
			ids = append(ids, m.ID)
		}
	}
	return s.clipsOf(r, ids)
}

// clipsOf returns the clips of these messages by id; a message without one (not a
// VideoGram) is not in the map. A failed read shows the messages without their
// clips rather than no page.
func (s *Site) clipsOf(r *http.Request, messageIDs []string) map[string]videogram.Clip {
	if s.videograms == nil || len(messageIDs) == 0 {
		return nil
	}
	c, err := s.videograms.Clips(r.Context(), messageIDs)
	if err != nil {
		s.log.Error("web: clips", "err", err)
	}
	return c
}

// videogramSection is the VideoGram form of a conversation, when the server offers
// VideoGrams and this contact may receive them.
func (s *Site) videogramSection(r *http.Request, contactID string, f *Form) *VideoGramSection {
	if s.videograms == nil {
		return nil
	}
	q, err := s.messages.QuoteVideoGram(r.Context(), currentAccount(r).ID, contactID, false)
	if err != nil {
		return nil
	}
	return &VideoGramSection{Quote: q, Price: ledger.Dollars(int64(q.StampCents)), Form: f, Key: formKey(f), MaxBytes: s.uploads.MaxBytes()}
}

// sendVideoGram takes the conversation's VideoGram form: the id of an upload the
// script finished, or (without the script) the file itself, read as it arrives.
func (s *Site) sendVideoGram(w http.ResponseWriter, r *http.Request) {
	acct, contact := currentAccount(r), r.PathValue("id")
	f := emptyForm()
	again := func(status int, f *Form) { s.conversation(w, r, status, emptyForm(), f) }
	if s.videograms == nil {
		s.answer(w, r, messaging.ErrNoVideoGrams)
		return
	}
	// Before the file is read: whether this person may receive one at all.
	if _, err := s.messages.QuoteVideoGram(r.Context(), acct.ID, contact, false); err != nil {
		s.refuse(w, r, f, err, again)
		return
	}
	var uploadID string
	var fileSent bool // the upload is the form's own file, not one of the script's
	var err error
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		uploadID, fileSent, err = s.readVideoGramForm(w, r, f)
	} else if err = r.ParseForm(); err == nil {
		f.Values["key"], uploadID = r.PostFormValue("key"), r.PostFormValue("upload_id")
	} else {
		err = httpx.ErrBadForm
	}
	if errors.Is(err, httpx.ErrBadForm) {
		s.Error(w, r, http.StatusBadRequest)
		return
	}
	if err == nil {
		_, err = s.messages.SendVideoGram(r.Context(), acct.ID, contact, messaging.VideoGramDraft{UploadID: uploadID, Key: f.Values["key"]})
		if errors.Is(err, messaging.ErrKeyReused) && fileSent {
			// The form posted its file twice (a double click without the script):
			// the first is sent, and this second copy of the file is not needed.
			if ferr := s.uploads.Discard(context.WithoutCancel(r.Context()), uploadID); ferr != nil {
				s.log.Warn("web: forget a second upload", "err", ferr)
			}
			err = nil
		}
		if err == nil {
			http.Redirect(w, r, "/people/"+contact+"/messages?sent=1#latest", http.StatusSeeOther)
			return
		}
	}
	if _, refused := problem.As(err); !refused {
		s.log.Error("web: send videogram", "err", err, "request_id", httpx.RequestID(r.Context()))
		f.Message = s.cat.T(s.Lang(r), "conversation.failed")
		again(http.StatusServiceUnavailable, f)
		return
	}
	s.refuse(w, r, f, err, again)
}

// readVideoGramForm reads the form part by part: the key, and the upload's id or
// the file, which goes straight to an upload (never whole in memory).
func (s *Site) readVideoGramForm(w http.ResponseWriter, r *http.Request, f *Form) (uploadID string, fileSent bool, err error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return "", false, httpx.ErrBadForm
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return uploadID, fileSent, nil
		}
		if err != nil {
			return "", false, httpx.ErrBadForm
		}
		switch name := part.FormName(); {
		case name == "video" && part.FileName() != "":
			if uploadID != "" {
				continue // the script sent it already
			}
			httpx.AllowSlowUpload(w, videoUploadTime)
			uploadID, err = s.uploads.Receive(r.Context(), currentAccount(r).ID, part, 0)
			if err != nil {
				return "", false, err
			}
			fileSent = true
		case name == "key" || name == "upload_id":
			v, err := formValue(part)
			if err != nil {
				return "", false, httpx.ErrBadForm
			}
			if name == "key" {
				f.Values["key"] = v
			} else if v != "" && !fileSent {
				// A file already received is what this form sends: an id after
				// it would orphan that upload and forget another.
				uploadID = v
			}
		}
	}
}

// formValue reads a small field of a multipart form.
func formValue(p *multipart.Part) (string, error) {
	b, err := io.ReadAll(io.LimitReader(p, 1<<10+1))
	if err != nil || len(b) > 1<<10 {
		return "", httpx.ErrBadForm
	}
	return string(b), nil
}

// uploadFailed answers a refused resumable upload as the script reads it.
func (s *Site) uploadFailed(w http.ResponseWriter, r *http.Request, err error) {
	p, ok := problem.As(err)
	if !ok {
		s.log.Error("web: upload", "err", err, "request_id", httpx.RequestID(r.Context()))
		p, _ = problem.As(errUploadBroke)
	}
	httpx.Refusing(w, p)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpx.Status(p))
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": p.Code, "message": httpx.Say(s.cat, s.Lang(r), p)}})
}

var errUploadBroke = problem.Declare(problem.Unavailable, "upload_failed", "web: an upload could not be stored").Say("videogram.upload_failed")

// viewer is who asks for a message's photo or clip: the signed-in family, staff of
// the portal, and the resident signed in at this kiosk.
func (s *Site) viewer(r *http.Request) messaging.Viewer {
	var v messaging.Viewer
	if a := currentAccount(r); a != nil {
		v.AccountID = a.ID
	}
	if u := currentStaff(r); u != nil {
		v.Staff = &u.Access
	}
	// What the kiosk page loads is not the resident's doing: it does not keep the
	// session alive, and a session still owing its first PIN change sees nothing.
	if device, ok, _ := s.kioskDevice(r); ok {
		if sess, err := s.fac.KioskPeek(r.Context(), device, cookie(r, ResidentCookie)); err == nil && !sess.MustChange {
			v.ResidentID = sess.Resident.ID
		}
	}
	return v
}

// videogramVideo serves a clip with ranges, to whoever may see it.
func (s *Site) videogramVideo(w http.ResponseWriter, r *http.Request) {
	if s.videograms == nil {
		s.Error(w, r, http.StatusNotFound)
		return
	}
	b, err := s.videograms.Video(r.Context(), s.viewer(r), r.PathValue("id"))
	if err != nil {
		s.answer(w, r, err)
		return
	}
	defer b.Close()
	// Never cached: a kiosk is shared, and the next person must not find it.
	w.Header().Set("Cache-Control", "private, no-store")
	w.Header().Set("Content-Type", "video/mp4")
	http.ServeContent(w, r, "", b.ModTime(), b)
}

// videogramPoster serves a clip's poster to whoever may see the clip.
func (s *Site) videogramPoster(w http.ResponseWriter, r *http.Request) {
	if s.videograms == nil {
		s.Error(w, r, http.StatusNotFound)
		return
	}
	data, err := s.videograms.Poster(r.Context(), s.viewer(r), r.PathValue("id"))
	if err != nil {
		s.answer(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "private, no-store")
	w.Header().Set("Content-Type", "image/jpeg")
	w.Write(data)
}
