// Package videogram owns the clips of VideoGrams: a family's upload becomes a clip
// every kiosk and phone can play (converted by a background job with ffmpeg), kept
// in the media store until the agency's retention deletes it. The message a clip
// belongs to (its price, its review, who may see it) is the messaging package's:
// the two meet in a message id, and this package tells messaging how processing
// ended through the small Messages interface.
package videogram

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/kinlink/kinlink/internal/audit"
	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/jobs"
	"github.com/kinlink/kinlink/internal/media"
	"github.com/kinlink/kinlink/internal/messaging"
	"github.com/kinlink/kinlink/internal/problem"
)

// States of a clip.
const (
	Processing = "processing" // waiting for or in conversion
	Ready      = "ready"      // converted and stored
	Failed     = "failed"     // could not be used; Fault says why
	Deleted    = "deleted"    // past the agency's retention
)

// ProcessJob is the job kind that converts one clip.
const ProcessJob = "videogram.process"

// Messages is what this package tells messaging: a clip is ready (its message goes
// to review or is delivered) or could not be used (its message fails, and its
// stamps are refunded). Both must be safe to call twice for one message: a job
// that crashed after telling runs again.
type Messages interface {
	ClipReady(ctx context.Context, messageID string) error
	ClipFailed(ctx context.Context, messageID string, fault media.ClipFault) error
	// VideoGramRetentions says how many days each agency keeps clips.
	VideoGramRetentions(ctx context.Context) ([]messaging.Retention, error)
	// SeeVideoGram checks who may see a VideoGram (and audits staff); Watched
	// records that its resident played it.
	SeeVideoGram(ctx context.Context, v messaging.Viewer, messageID string) error
	Watched(ctx context.Context, residentID, messageID string) error
}

// Service is the VideoGram clips.
type Service struct {
	db       *database.DB
	clips    *media.Clips
	uploads  *media.Uploads
	blobs    media.Store
	work     string // a folder for conversions in progress
	log      *slog.Logger
	messages Messages
}

// New returns the service. work is a folder where conversions write their output
// before it is stored.
func New(db *database.DB, clips *media.Clips, uploads *media.Uploads, blobs media.Store, work string, log *slog.Logger) (*Service, error) {
	if err := os.MkdirAll(work, 0o700); err != nil {
		return nil, fmt.Errorf("videogram: work folder: %w", err)
	}
	return &Service{db: db, clips: clips, uploads: uploads, blobs: blobs, work: work, log: log}, nil
}

// Tell sets who hears how processing ended (messaging, which itself needs this
// service to begin clips; the app wires the two).
func (s *Service) Tell(m Messages) { s.messages = m }

// MaxLimit is the longest clip any agency may allow.
const MaxLimit = 120 * time.Second

// JobLimit is the longest a conversion job may run for clips of at most limit:
// the conversion's own time limit, and room for storing the result.
func JobLimit(limit time.Duration) time.Duration {
	return media.ConvertLimit(limit) + 2*time.Minute
}

// Begin takes a finished upload of owner (a family's account, or a resident at a
// kiosk: media.ResidentOwner) for the VideoGram messageID, in the
// transaction that stores and charges the message, and queues its conversion. The
// clip may be at most limit long (the agency's setting). A used, unfinished or
// unknown upload is refused (media.ErrUploadUsed and the like).
func (s *Service) Begin(ctx context.Context, tx *sql.Tx, owner, messageID, uploadID string, limit time.Duration) error {
	if _, err := s.uploads.Use(ctx, tx, owner, uploadID); err != nil {
		return err
	}
	if _, err := s.db.TxExec(ctx, tx, `INSERT INTO videograms (message_id, upload_id, limit_ms, state, created_at)
		VALUES ($1, $2, $3, 'processing', $4)`, messageID, uploadID, limit.Milliseconds(), time.Now().UTC()); err != nil {
		return err
	}
	_, err := jobs.Enqueue(ctx, s.db, tx, ProcessJob, processPayload{MessageID: messageID}, jobs.EnqueueOptions{})
	return err
}

type processPayload struct {
	MessageID string `json:"message_id"`
}

// HandleProcess is the conversion job. It can run more than once for one clip (a
// server killed in the middle): a clip already ready or failed is only told to
// messaging again, and a conversion that is run again stores under the same keys.
func (s *Service) HandleProcess(ctx context.Context, payload json.RawMessage) error {
	var p processPayload
	if err := json.Unmarshal(payload, &p); err != nil {
		return jobs.Permanent(err)
	}
	var state, uploadID, fault string
	var limitMS int64
	err := s.db.QueryRow(ctx, `SELECT state, upload_id, limit_ms, fault FROM videograms WHERE message_id = $1`, p.MessageID).
		Scan(&state, &uploadID, &limitMS, &fault)
	if errors.Is(err, sql.ErrNoRows) {
		return jobs.Permanent(fmt.Errorf("videogram: no clip for message %s", p.MessageID))
	}
	if err != nil {
		return err
	}
	if state != Processing {
		return s.tell(ctx, p.MessageID, state, uploadID, media.ClipFault(fault))
	}

	// An upload whose bytes are gone (deleted, or on another server's disk) will
	// not come back by retrying for a day: the family is told and refunded now.
	src := s.uploads.Path(uploadID)
	if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("videogram: the upload is gone", "message_id", p.MessageID, "upload_id", uploadID, "path", src)
		return s.fail(ctx, p.MessageID, media.ClipLost)
	}
	dir, err := os.MkdirTemp(s.work, "clip-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	clip, err := s.clips.Convert(ctx, src, dir, time.Duration(limitMS)*time.Millisecond)
	var ce *media.ClipError
	if errors.As(err, &ce) {
		// The clip cannot be used, or could not be converted in its time: either
		// way it is told to the family and refunded, never retried for a day.
		s.log.Info("videogram: clip refused", "message_id", p.MessageID, "fault", ce.Fault, "detail", ce.Detail)
		return s.fail(ctx, p.MessageID, ce.Fault)
	}
	if err != nil {
		return err // the store, a cancelled context: retried
	}
	if err := s.blobs.PutFile(ctx, videoKey(p.MessageID), clip.Path); err != nil {
		return err
	}
	if err := s.blobs.Put(ctx, posterKey(p.MessageID), clip.Poster); err != nil {
		return err
	}
	if _, err := s.db.Write().ExecContext(ctx, `UPDATE videograms SET state = 'ready', duration_ms = $2, width = $3, height = $4,
		video_bytes = $5, processed_at = $6 WHERE message_id = $1 AND state = 'processing'`,
		p.MessageID, clip.Duration.Milliseconds(), clip.Width, clip.Height, clip.Size, time.Now().UTC()); err != nil {
		return err
	}
	// Messaging hears what the row now says: ready, or failed if this conversion
	// was given up while it ran (a worker that outlived its lease).
	return s.settle(ctx, p.MessageID)
}

// GiveUpProcess is told when a conversion job fails for good (its last attempt, or
// a permanent error). A clip still processing then fails as one we could not
// process, so its message is refunded and the family told, rather than left
// "processing" with its stamps taken; a clip that got further is told as it is.
// Like the job, it is safe to repeat.
func (s *Service) GiveUpProcess(ctx context.Context, payload json.RawMessage, cause error) error {
	var p processPayload
	if err := json.Unmarshal(payload, &p); err != nil || p.MessageID == "" {
		return nil // it names no clip: nothing to settle
	}
	s.log.Error("videogram: conversion given up", "message_id", p.MessageID, "err", cause)
	return s.fail(ctx, p.MessageID, media.ClipProcessFault)
}

// fail marks a clip that is still processing failed with fault, and tells messaging
// how it ended (failed: its message is refunded). A clip that is no longer
// processing keeps its state, and that is what messaging is told.
func (s *Service) fail(ctx context.Context, messageID string, fault media.ClipFault) error {
	if _, err := s.db.Write().ExecContext(ctx, `UPDATE videograms SET state = 'failed', fault = $2, processed_at = $3
		WHERE message_id = $1 AND state = 'processing'`, messageID, string(fault), time.Now().UTC()); err != nil {
		return err
	}
	return s.settle(ctx, messageID)
}

// settle tells messaging how a clip ended, as its row says.
func (s *Service) settle(ctx context.Context, messageID string) error {
	var state, uploadID, fault string
	err := s.db.QueryRow(ctx, `SELECT state, upload_id, fault FROM videograms WHERE message_id = $1`, messageID).Scan(&state, &uploadID, &fault)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.tell(ctx, messageID, state, uploadID, media.ClipFault(fault))
}

// tell tells messaging that a clip is ready or failed; a clip still processing or
// deleted has nothing to tell.
func (s *Service) tell(ctx context.Context, messageID, state, uploadID string, fault media.ClipFault) error {
	switch state {
	case Ready:
		return s.ready(ctx, messageID, uploadID)
	case Failed:
		return s.failed(ctx, messageID, uploadID, fault)
	}
	return nil
}

func (s *Service) ready(ctx context.Context, messageID, uploadID string) error {
	if err := s.messages.ClipReady(ctx, messageID); err != nil {
		return err
	}
	return s.uploads.Forget(ctx, uploadID)
}

func (s *Service) failed(ctx context.Context, messageID, uploadID string, fault media.ClipFault) error {
	if err := s.messages.ClipFailed(ctx, messageID, fault); err != nil {
		return err
	}
	return s.uploads.Forget(ctx, uploadID)
}

// The blob keys of a clip follow from its message, so a conversion run twice
// overwrites rather than leaves a copy behind.
func videoKey(messageID string) string  { return blobKey("video:" + messageID) }
func posterKey(messageID string) string { return blobKey("poster:" + messageID) }

func blobKey(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

// Clip is what the pages and the API show of a clip.
type Clip struct {
	MessageID     string
	State         string
	Fault         media.ClipFault // when Failed
	Duration      time.Duration   // when Ready
	Width, Height int
	Bytes         int64
}

// Clips returns the clips of these messages, by message id; messages without one
// are not in the map.
func (s *Service) Clips(ctx context.Context, messageIDs []string) (map[string]Clip, error) {
	out := make(map[string]Clip, len(messageIDs))
	if len(messageIDs) == 0 {
		return out, nil
	}
	args := make([]any, len(messageIDs))
	for i, id := range messageIDs {
		args[i] = id
	}
	rows, err := s.db.Read().QueryContext(ctx, `SELECT message_id, state, fault, duration_ms, width, height, video_bytes
		FROM videograms WHERE message_id IN (`+database.Placeholders(1, len(args))+`)`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var c Clip
		var ms int64
		var fault string
		if err := rows.Scan(&c.MessageID, &c.State, &fault, &ms, &c.Width, &c.Height, &c.Bytes); err != nil {
			return nil, err
		}
		c.Fault, c.Duration = media.ClipFault(fault), time.Duration(ms)*time.Millisecond
		out[c.MessageID] = c
	}
	return out, rows.Err()
}

// ErrNoClip is a message without a playable clip (not a VideoGram, not ready yet,
// failed or deleted): not found, like any id.
var ErrNoClip = problem.Declare(problem.NotFound, "not_found", "videogram: no playable clip")

// Video opens a ready clip for playback by someone who may see it (messaging
// decides who, and audits staff). The resident's playing marks it watched, so a
// kiosk page without its script marks it too.
func (s *Service) Video(ctx context.Context, v messaging.Viewer, messageID string) (media.Blob, error) {
	if err := s.playable(ctx, v, messageID); err != nil {
		return nil, err
	}
	b, err := s.blobs.Open(ctx, videoKey(messageID))
	if errors.Is(err, media.ErrNoBlob) {
		return nil, ErrNoClip
	}
	if err != nil {
		return nil, err
	}
	if v.ResidentID != "" {
		if err := s.messages.Watched(ctx, v.ResidentID, messageID); err != nil {
			b.Close()
			return nil, err
		}
	}
	return b, nil
}

// Poster returns a ready clip's poster, a JPEG, to someone who may see it.
func (s *Service) Poster(ctx context.Context, v messaging.Viewer, messageID string) ([]byte, error) {
	if err := s.playable(ctx, v, messageID); err != nil {
		return nil, err
	}
	b, err := s.blobs.Get(ctx, posterKey(messageID))
	if errors.Is(err, media.ErrNoBlob) {
		return nil, ErrNoClip
	}
	return b, err
}

func (s *Service) playable(ctx context.Context, v messaging.Viewer, messageID string) error {
	if err := s.messages.SeeVideoGram(ctx, v, messageID); err != nil {
		return err
	}
	var state string
	err := s.db.QueryRow(ctx, `SELECT state FROM videograms WHERE message_id = $1`, messageID).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && state != Ready) {
		return ErrNoClip
	}
	return err
}

// ExpireBatch is how many clips Expire reads at a time: one read and the memory it
// takes stay small however many clips are due, and Expire reads again until none
// is left.
const ExpireBatch = 1000

// Expire deletes the clips of VideoGrams older than their agency keeps them: the
// video and its poster leave the store, the clip is marked deleted (the message
// stays, saying so), and each deletion is audited. It returns how many.
//
// Each agency's clips are read by its own cutoff. Reading the oldest clips of all
// agencies and then keeping each agency's apart would stall: the oldest thousand
// could all belong to an agency that keeps clips for years, and no other
// agency's would ever be reached.
func (s *Service) Expire(ctx context.Context, now time.Time) (int, error) {
	keep, err := s.messages.VideoGramRetentions(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range keep {
		k, err := s.expireAgency(ctx, r, now)
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// dueClip is a ready clip past its agency's retention.
type dueClip struct {
	messageID              string
	createdAt              time.Time
	facilityID, residentID string
}

// expireAgency deletes one agency's clips older than its retention, oldest first,
// a batch at a time. Each batch starts after the last clip of the one before, so
// the clips of other agencies it passes over are read once per run, not once per
// batch.
func (s *Service) expireAgency(ctx context.Context, r messaging.Retention, now time.Time) (int, error) {
	cutoff := now.AddDate(0, 0, -r.Days).UTC()
	after, afterID := time.Unix(0, 0).UTC(), ""
	n := 0
	for {
		due, err := s.dueClips(ctx, r.AgencyID, cutoff, after, afterID)
		if err != nil {
			return n, err
		}
		for _, c := range due {
			deleted, err := s.deleteClip(ctx, c, r, now)
			if err != nil {
				return n, err
			}
			if deleted {
				n++
			}
		}
		if len(due) < ExpireBatch {
			return n, nil
		}
		last := due[len(due)-1]
		after, afterID = last.createdAt, last.messageID
	}
}

// dueClips reads the next batch of an agency's ready clips made before cutoff,
// after the clip (after, afterID) in the order created. The agency of a clip is its
// message's: a read join of messages (docs/architecture.md), since through
// messaging's functions it would take the id of every ready clip, every run.
func (s *Service) dueClips(ctx context.Context, agencyID string, cutoff, after time.Time, afterID string) ([]dueClip, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT v.message_id, v.created_at, m.facility_id, m.resident_id
		FROM videograms v JOIN messages m ON m.id = v.message_id
		WHERE v.state = 'ready' AND m.agency_id = $1 AND v.created_at < $2
		AND (v.created_at > $3 OR (v.created_at = $3 AND v.message_id > $4))
		ORDER BY v.created_at, v.message_id LIMIT $5`, agencyID, cutoff, after, afterID, ExpireBatch)
	if err != nil {
		return nil, fmt.Errorf("videogram: expire: %w", err)
	}
	defer rows.Close()
	var out []dueClip
	for rows.Next() {
		var c dueClip
		if err := rows.Scan(&c.messageID, &c.createdAt, &c.facilityID, &c.residentID); err != nil {
			return nil, fmt.Errorf("videogram: expire: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// deleteClip deletes one clip's video and poster and marks it deleted, audited; it
// reports false for a clip another server deleted meanwhile.
func (s *Service) deleteClip(ctx context.Context, c dueClip, r messaging.Retention, now time.Time) (bool, error) {
	if err := s.blobs.Delete(ctx, videoKey(c.messageID)); err != nil {
		return false, err
	}
	if err := s.blobs.Delete(ctx, posterKey(c.messageID)); err != nil {
		return false, err
	}
	deleted := false
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE videograms SET state = 'deleted', deleted_at = $2 WHERE message_id = $1 AND state = 'ready'`, c.messageID, now.UTC())
		if err != nil {
			return err
		}
		if k, _ := res.RowsAffected(); k == 0 {
			return nil
		}
		deleted = true
		return audit.Record(ctx, s.db, tx, audit.Entry{Actor: "system", Action: "videogram.deleted", AgencyID: r.AgencyID,
			FacilityID: c.facilityID, ResidentID: c.residentID, Subject: "message:" + c.messageID,
			Detail: fmt.Sprintf("kept %d days", r.Days)})
	})
	return deleted && err == nil, err
}
