package messaging

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/jobs"
)

// PhotoCheckJob is the job that removes a send's photos if no message holds them
// an hour after they were stored.
const PhotoCheckJob = "messaging.photo_check"

// PhotoClaimTime is how long a stored photo may wait for its message. A send stores
// its photos before the transaction that stores the message, so that a message
// never points at a missing photo; a send that fails removes them at once, but a
// server that stops between the two (or a store that fails to delete) would leave
// them behind. The check is queued, and committed, before the photos are stored.
// An hour is far beyond any request's life (the server's write timeout is a minute),
// so a photo is never removed from under a send still in flight.
const PhotoClaimTime = time.Hour

type photoCheck struct {
	Keys []string `json:"keys"`
}

// queuePhotoCheck commits the check of photos about to be stored.
func (s *Service) queuePhotoCheck(ctx context.Context, keys []string) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		_, err := jobs.Enqueue(ctx, tx, PhotoCheckJob, photoCheck{Keys: keys}, jobs.EnqueueOptions{RunAfter: time.Now().Add(PhotoClaimTime)})
		return err
	})
}

// HandlePhotoCheck removes those of a send's photos that no message holds. Running
// it twice is harmless: a photo is only ever removed when nothing refers to it.
func (s *Service) HandlePhotoCheck(ctx context.Context, payload json.RawMessage) error {
	var c photoCheck
	if err := json.Unmarshal(payload, &c); err != nil {
		return jobs.Permanent(err)
	}
	for _, key := range c.Keys {
		if !ids.Valid(key) {
			return jobs.Permanent(fmt.Errorf("messaging: photo check: bad key %q", key))
		}
		var held int
		err := s.db.QueryRow(ctx, "SELECT 1 FROM message_photos WHERE id = $1", key).Scan(&held)
		if err == nil {
			continue
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("messaging: photo check: %w", err)
		}
		if err := s.blobs.Delete(ctx, key); err != nil {
			return fmt.Errorf("messaging: photo check: %w", err)
		}
	}
	return nil
}
