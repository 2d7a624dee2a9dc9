package web

import (
	"net/http"
	"time"

	"github.com/kinlink/kinlink/internal/httpx"
	"github.com/kinlink/kinlink/internal/visits"
)

// A visit's recordings in the portal, for staff who may play them (investigators,
// visitation officers, administrators of the facility): one file per room the visit
// had, each played from the media store with range requests, each viewing audited
// by the visits service.

// portalRecordingRoutes are the recording pages, where visits are offered.
func (s *Site) portalRecordingRoutes() []httpx.Route {
	if s.visits == nil {
		return nil
	}
	return []httpx.Route{
		httpx.On("GET /facility/visits/{id}/recording", s.requireStaff, s.recordingPage),
		httpx.On("GET /facility/visits/{id}/recording/{segment}", s.requireStaff, s.playRecording),
	}
}

// RecordingData is the recordings page.
type RecordingData struct {
	VisitID    string
	Recordings []visits.Recording
}

func (s *Site) recordingPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	list, err := s.visits.Recordings(r.Context(), currentStaff(r).Access, id)
	if err != nil {
		s.answer(w, r, err)
		return
	}
	s.renderPortal(w, r, http.StatusOK, "portal_recording", "portal.visits.recording.title", RecordingData{VisitID: id, Recordings: list})
}

// playRecording sends a recording, in the parts a player asks for.
func (s *Site) playRecording(w http.ResponseWriter, r *http.Request) {
	blob, err := s.visits.OpenRecording(r.Context(), currentStaff(r).Access, r.PathValue("id"), r.PathValue("segment"))
	if err != nil {
		s.answer(w, r, err)
		return
	}
	defer blob.Close()
	w.Header().Set("Content-Type", "video/mp4")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Disposition", "inline")
	http.ServeContent(w, r, "", time.Time{}, blob)
}
