package visits

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/kinlink/kinlink/internal/audit"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/jobs"
	"github.com/kinlink/kinlink/internal/media"
	"github.com/kinlink/kinlink/internal/visits/rtc"
)

// MergeJob is the job that merges a recorded room into one playable file.
const MergeJob = "visits.merge"

// MergeLimit is the longest a merge may run: a visit is at most an hour.
const MergeLimit = 30 * time.Minute

// recordings is where a server records visits and keeps what it recorded.
type recordings struct {
	clips *media.Clips
	blobs media.Store
	work  string // a folder per visit, a folder per room in it
}

// UseRecordings makes the service record every visit that is not privileged: each
// room's recorder writes into work, and a MergeJob merges what it wrote into one
// file kept in blobs (media.Clips runs ffmpeg). Without it nothing is recorded.
func (s *Service) UseRecordings(clips *media.Clips, blobs media.Store, work string) error {
	if err := os.MkdirAll(work, 0o700); err != nil {
		return fmt.Errorf("visits: recordings: %w", err)
	}
	s.rec = &recordings{clips: clips, blobs: blobs, work: work}
	return nil
}

// mergeJob is a MergeJob's payload: one room's recording.
type mergeJob struct {
	VisitID string             `json:"visit_id"`
	Segment string             `json:"segment"`
	Files   []rtc.RecordedFile `json:"files"`
	Length  time.Duration      `json:"length"`
}

// recorder makes the recorder of a visit's room. When it closes (the room
// ended, or the server stops) the merge of what it wrote is queued.
func (s *Service) recorder(visitID string) (rtc.Sink, error) {
	segment := ids.Ordered()
	dir := filepath.Join(s.rec.work, visitID, segment)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	r, err := rtc.NewRecorder(rtc.RecorderConfig{Dir: dir, Log: s.live.Log})
	if err != nil {
		return nil, err
	}
	return &recordingSink{Recorder: r, done: func(rec rtc.Recording) {
		job := mergeJob{VisitID: visitID, Segment: segment, Files: rec.Files, Length: rec.Length}
		err := s.db.InTx(context.Background(), func(tx *sql.Tx) error {
			_, err := jobs.Enqueue(context.Background(), s.db, tx, MergeJob, job, jobs.EnqueueOptions{MaxAttempts: 3})
			return err
		})
		if err != nil {
			s.live.Log.Error("visits: queue the merge of a recording", "visit", visitID, "err", err)
			return
		}
		s.wake()
	}}, nil
}

// recordingSink is a room's recorder that queues its merge once closed.
type recordingSink struct {
	*rtc.Recorder
	done func(rtc.Recording)
}

func (r *recordingSink) Close() {
	r.Recorder.Close()
	r.done(r.Recording())
}

// HandleMerge merges a room's recording (family on the left, resident on the
// right) into one MP4, keeps it in the media store, and deletes the room's files.
func (s *Service) HandleMerge(ctx context.Context, payload json.RawMessage) error {
	var m mergeJob
	if err := json.Unmarshal(payload, &m); err != nil || !ids.Valid(m.VisitID) || !ids.Valid(m.Segment) {
		return jobs.Permanent(fmt.Errorf("visits: merge: bad payload"))
	}
	if s.rec == nil {
		return jobs.Permanent(errors.New("visits: merge: this server records nothing"))
	}
	dir := filepath.Join(s.rec.work, m.VisitID, m.Segment)
	var rec media.VisitRecording
	rec.Length = m.Length
	for _, f := range m.Files {
		if filepath.Dir(f.Path) != dir { // only the room's own files
			return jobs.Permanent(fmt.Errorf("visits: merge: %s is not in the room's folder", f.Path))
		}
		side := 0
		if f.Role == rtc.Resident {
			side = 1
		}
		track := &media.VisitTrack{Path: f.Path, Start: f.Start}
		if f.Kind == webrtc.RTPCodecTypeAudio {
			rec.Sides[side].Audio = track
		} else {
			rec.Sides[side].Video = track
		}
	}
	if len(m.Files) > 0 {
		out := filepath.Join(dir, "visit.mp4")
		length, err := s.rec.clips.MergeVisit(ctx, rec, out)
		if err != nil {
			return fmt.Errorf("visits: merge %s: %w", m.VisitID, err)
		}
		key := ids.New() // the store's keys are opaque ids
		if err := s.rec.blobs.PutFile(ctx, key, out); err != nil {
			return fmt.Errorf("visits: keep the recording of %s: %w", m.VisitID, err)
		}
		if _, err := s.db.Write().ExecContext(ctx, `INSERT INTO visit_recordings (visit_id, segment, blob_key, seconds, created_at)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`, m.VisitID, m.Segment, key, int64(length.Round(time.Second)/time.Second), s.now().UTC()); err != nil {
			return fmtErr("keep the recording", err)
		}
	}
	return os.RemoveAll(dir)
}

// Recording is one recorded room of a visit, as staff play it.
type Recording struct {
	Segment   string
	Length    time.Duration
	CreatedAt time.Time
	Deleted   bool // past the agency's retention
}

// reviewer is a visit by's staff may see the recordings of: an investigator, a
// visitation officer or an administrator of its facility.
func (s *Service) reviewer(ctx context.Context, by facility.Access, visitID string) (Visit, error) {
	if !ids.Valid(visitID) {
		return Visit{}, ErrNotFound
	}
	v, err := visitByID(ctx, s.db.Read(), visitID)
	if err != nil {
		return v, err
	}
	p, err := s.place(ctx, v.FacilityID)
	if err != nil {
		return v, err
	}
	if p.AgencyID != by.AgencyID {
		return Visit{}, ErrNotFound
	}
	if !by.Has(facility.Investigator, p.ID) && !by.Has(facility.VisitationOfficer, p.ID) && !by.Has(facility.FacilityAdmin, p.ID) {
		return Visit{}, facility.ErrForbidden
	}
	return v, nil
}

// Recordings lists a visit's recordings for staff who may play them.
func (s *Service) Recordings(ctx context.Context, by facility.Access, visitID string) ([]Recording, error) {
	v, err := s.reviewer(ctx, by, visitID)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.Read().QueryContext(ctx, `SELECT segment, seconds, created_at, deleted_at IS NOT NULL FROM visit_recordings
		WHERE visit_id = $1 ORDER BY segment`, v.ID)
	if err != nil {
		return nil, fmtErr("recordings", err)
	}
	defer rows.Close()
	var out []Recording
	for rows.Next() {
		var r Recording
		var seconds int64
		if err := rows.Scan(&r.Segment, &seconds, &r.CreatedAt, &r.Deleted); err != nil {
			return nil, fmtErr("recordings", err)
		}
		r.Length = time.Duration(seconds) * time.Second
		out = append(out, r)
	}
	return out, rows.Err()
}

// OpenRecording opens a recording for playback by staff who may play it; each
// viewing is audited (once per viewing, however many range requests the player
// makes).
func (s *Service) OpenRecording(ctx context.Context, by facility.Access, visitID, segment string) (media.Blob, error) {
	v, err := s.reviewer(ctx, by, visitID)
	if err != nil {
		return nil, err
	}
	if s.rec == nil {
		return nil, ErrNotFound
	}
	var key string
	err = s.db.Read().QueryRowContext(ctx, "SELECT blob_key FROM visit_recordings WHERE visit_id = $1 AND segment = $2 AND deleted_at IS NULL",
		v.ID, segment).Scan(&key)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmtErr("recording", err)
	}
	if err := audit.RecordViewing(ctx, s.db, audit.Entry{Actor: "staff:" + by.AccountID, Action: "visit.recording.play", AgencyID: by.AgencyID,
		FacilityID: v.FacilityID, ResidentID: v.ResidentID, Subject: "visit:" + v.ID, Detail: segment}); err != nil {
		return nil, err
	}
	return s.rec.blobs.Open(ctx, key)
}

// ExpireRecordings deletes the recordings older than their agency keeps them
// (RecordingRetentionDays), each deletion audited; the rows stay as a record. It
// reports how many it deleted.
func (s *Service) ExpireRecordings(ctx context.Context) (int, error) {
	if s.rec == nil {
		return 0, nil
	}
	agencies, err := s.fac.Agencies(ctx)
	if err != nil {
		return 0, err
	}
	deleted := 0
	for _, a := range agencies {
		cutoff := s.now().UTC().AddDate(0, 0, -a.RecordingRetentionDays)
		facilities, err := s.fac.Facilities(ctx, a.ID)
		if err != nil {
			return deleted, err
		}
		for _, f := range facilities {
			rows, err := s.db.Read().QueryContext(ctx, `SELECT r.visit_id, r.segment, r.blob_key, v.resident_id FROM visit_recordings r
				JOIN visits v ON v.id = r.visit_id WHERE v.facility_id = $1 AND r.deleted_at IS NULL AND r.created_at < $2
				ORDER BY r.created_at LIMIT 500`, f.ID, cutoff)
			if err != nil {
				return deleted, fmtErr("expire recordings", err)
			}
			type due struct{ visit, segment, key, resident string }
			var list []due
			for rows.Next() {
				var d due
				if err := rows.Scan(&d.visit, &d.segment, &d.key, &d.resident); err != nil {
					rows.Close()
					return deleted, fmtErr("expire recordings", err)
				}
				list = append(list, d)
			}
			rows.Close()
			for _, d := range list {
				if err := s.rec.blobs.Delete(ctx, d.key); err != nil && !errors.Is(err, media.ErrNoBlob) {
					return deleted, err
				}
				err := s.db.InTx(ctx, func(tx *sql.Tx) error {
					if _, err := tx.ExecContext(ctx, "UPDATE visit_recordings SET deleted_at = $3 WHERE visit_id = $1 AND segment = $2",
						d.visit, d.segment, s.now().UTC()); err != nil {
						return err
					}
					return audit.Record(ctx, s.db, tx, audit.Entry{Actor: "system", Action: "visit.recording.delete", AgencyID: a.ID, FacilityID: f.ID,
						ResidentID: d.resident, Subject: "visit:" + d.visit, Detail: fmt.Sprintf("%s: past %d days", d.segment, a.RecordingRetentionDays)})
				})
				if err != nil {
					return deleted, err
				}
				deleted++
			}
		}
	}
	return deleted, nil
}

// RecoverRecordings queues the merge of every room's recording that a server
// stopped without (killed: its rooms never closed, so no merge was queued). It
// runs at start, before any room opens here: a folder still holding files then is
// a room of an earlier run, unless a merge of it is queued already. The files'
// places on the recording's timeline were in the dead server's memory, so each
// side starts at zero: its sound and picture stay together, the two sides may be
// a little apart. It reports how many merges it queued.
func (s *Service) RecoverRecordings(ctx context.Context) (int, error) {
	if s.rec == nil {
		return 0, nil
	}
	visitDirs, err := os.ReadDir(s.rec.work)
	if err != nil {
		return 0, fmt.Errorf("visits: recover recordings: %w", err)
	}
	queued := 0
	for _, vd := range visitDirs {
		if !vd.IsDir() || !ids.Valid(vd.Name()) {
			continue
		}
		segments, err := os.ReadDir(filepath.Join(s.rec.work, vd.Name()))
		if err != nil {
			return queued, fmt.Errorf("visits: recover recordings: %w", err)
		}
		for _, sd := range segments {
			if !sd.IsDir() || !ids.Valid(sd.Name()) {
				continue
			}
			var pending int
			if err := s.db.Read().QueryRowContext(ctx, `SELECT COUNT(*) FROM jobs WHERE kind = $1 AND state IN ('available', 'running')
				AND payload LIKE $2`, MergeJob, `%"segment":"`+sd.Name()+`"%`).Scan(&pending); err != nil {
				return queued, fmtErr("recover recordings", err)
			}
			if pending > 0 {
				continue
			}
			dir := filepath.Join(s.rec.work, vd.Name(), sd.Name())
			job := mergeJob{VisitID: vd.Name(), Segment: sd.Name()}
			for _, role := range []rtc.Role{rtc.Family, rtc.Resident} {
				for _, f := range []struct {
					kind webrtc.RTPCodecType
					ext  string
				}{{webrtc.RTPCodecTypeVideo, "ivf"}, {webrtc.RTPCodecTypeAudio, "ogg"}} {
					path := filepath.Join(dir, string(role)+"-"+f.kind.String()+"."+f.ext)
					if st, err := os.Stat(path); err == nil && st.Size() > 0 {
						job.Files = append(job.Files, rtc.RecordedFile{Role: role, Kind: f.kind, Path: path})
					}
				}
			}
			err := s.db.InTx(ctx, func(tx *sql.Tx) error {
				_, err := jobs.Enqueue(ctx, s.db, tx, MergeJob, job, jobs.EnqueueOptions{MaxAttempts: 3})
				return err
			})
			if err != nil {
				return queued, err
			}
			queued++
		}
	}
	if queued > 0 {
		s.wake()
	}
	return queued, nil
}
