package api

import (
	"context"
	"net/http"
	"strconv"

	"github.com/kinlink/kinlink/internal/messaging"
	"github.com/kinlink/kinlink/internal/videogram"
)

// videogramJSON is a VideoGram's clip as the app sees it.
type videogramJSON struct {
	// State is the clip's: processing, ready, failed or deleted. The message's
	// own state says where the VideoGram is (in review, delivered, read = watched).
	State      string `json:"state"`
	DurationMS int64  `json:"duration_ms,omitempty"`
	PosterURL  string `json:"poster_url,omitempty"`
	VideoURL   string `json:"video_url,omitempty"`
}

// clipsOf adds the clips of a page's VideoGrams to their messages.
func (a *API) clipsOf(ctx context.Context, msgs []messaging.Message, out []messageJSON) error {
	var ids []string
	for _, m := range msgs {
		if m.Kind == messaging.VideoGram {
			ids = append(ids, m.ID)
		}
	}
	if len(ids) == 0 || a.videograms == nil {
		return nil
	}
	clips, err := a.videograms.Clips(ctx, ids)
	if err != nil {
		return err
	}
	for i := range out {
		c, ok := clips[out[i].ID]
		if !ok {
			continue
		}
		v := &videogramJSON{State: c.State}
		if c.State == videogram.Ready {
			v.DurationMS = c.Duration.Milliseconds()
			v.PosterURL = "/api/v1/videograms/" + c.MessageID + "/poster"
			v.VideoURL = "/api/v1/videograms/" + c.MessageID + "/video"
		}
		out[i].VideoGram = v
	}
	return nil
}

// sendVideoGram is a family sending a VideoGram made of an upload finished with
// the resumable upload protocol: 202, since the clip is converted before it can be
// reviewed.
func (a *API) sendVideoGram(w http.ResponseWriter, r *http.Request) {
	key, ok := a.idempotencyKey(w, r)
	if !ok {
		return
	}
	var body struct {
		UploadID     string `json:"upload_id"`
		PrepaidReply bool   `json:"prepaid_reply"`
	}
	if !a.decode(w, r, &body) {
		return
	}
	acct := auth(r).account
	m, err := a.messages.SendVideoGram(r.Context(), acct.ID, r.PathValue("id"), messaging.VideoGramDraft{UploadID: body.UploadID, PrepaidReply: body.PrepaidReply, Key: key})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := []messageJSON{a.messageOf(acct.Locale, m)}
	if err := a.clipsOf(r.Context(), []messaging.Message{m}, out); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, out[0])
}

// videogramVideo plays a clip of the family's own VideoGram, with ranges.
func (a *API) videogramVideo(w http.ResponseWriter, r *http.Request) {
	if a.videograms == nil {
		a.fail(w, r, messaging.ErrNotFound)
		return
	}
	blob, err := a.videograms.Video(r.Context(), messaging.Viewer{AccountID: auth(r).account.ID}, r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	defer blob.Close()
	w.Header().Set("Cache-Control", "private, no-store")
	w.Header().Set("Content-Type", "video/mp4")
	http.ServeContent(w, r, "", blob.ModTime(), blob)
}

// videogramPoster is the clip's still picture.
func (a *API) videogramPoster(w http.ResponseWriter, r *http.Request) {
	if a.videograms == nil {
		a.fail(w, r, messaging.ErrNotFound)
		return
	}
	data, err := a.videograms.Poster(r.Context(), messaging.Viewer{AccountID: auth(r).account.ID}, r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "private, no-store")
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.Write(data)
}
