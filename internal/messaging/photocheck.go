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
// them behind. So a check is queued, and committed, before the photos are stored,
// and the send's own transaction withdraws it: the check and the message exclude
// each other, and a send that finds its check already taken fails instead of
// pointing at photos that may be gone.
const PhotoClaimTime = time.Hour

// errPhotosExpired: the send's photos waited longer than PhotoClaimTime.
var errPhotosExpired = errors.New("messaging: the photos waited too long for their message and are removed; send again")

type photoCheck struct {
	Keys []string `json:"keys"`
}

// queuePhotoCheck commits the check of photos about to be stored and returns its id.
func (s *Service) queuePhotoCheck(ctx context.Context, keys []string) (int64, error) {
	var id int64
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		id, err = jobs.Enqueue(ctx, s.db, tx, PhotoCheckJob, photoCheck{Keys: keys}, jobs.EnqueueOptions{RunAfter: time.Now().Add(PhotoClaimTime)})
		return err
	})
	return id, err
}

// claimPhotos withdraws the check of a send's photos inside the send's transaction.
func claimPhotos(ctx context.Context, tx *sql.Tx, checkID int64) error {
	ok, err := jobs.Withdraw(ctx, tx, checkID)
	if err == nil && !ok {
		err = errPhotosExpired
	}
	return err
}

// HandlePhotoCheck removes a send's photos when its message was never stored (a
// stored message withdraws the check). It still looks for each photo's row first:
// running twice, or for photos some message holds, removes nothing held.
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
