package visits

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kinlink/kinlink/internal/jobs"
)

// ReminderJob is the job that reminds a family of a coming visit.
const ReminderJob = "visits.remind"

// Reminders go out this long before a visit starts.
var reminderLeads = []time.Duration{24 * time.Hour, time.Hour}

// reminder is a ReminderJob's payload.
type reminder struct {
	VisitID string `json:"visit_id"`
	Before  string `json:"before"` // "24h" or "1h": which reminder
}

// queueReminders queues the reminders of a booked visit that are still to come,
// inside the booking's transaction. A reminder whose visit is no longer booked
// when it runs sends nothing, so cancellations need not withdraw them.
func (s *Service) queueReminders(ctx context.Context, tx *sql.Tx, v Visit, now time.Time) error {
	for _, lead := range reminderLeads {
		at := v.Start.Add(-lead)
		if !at.After(now) {
			continue
		}
		if _, err := jobs.Enqueue(ctx, s.db, tx, ReminderJob, reminder{VisitID: v.ID, Before: fmt.Sprintf("%dh", int(lead.Hours()))},
			jobs.EnqueueOptions{RunAfter: at, MaxAttempts: 5}); err != nil {
			return err
		}
	}
	return nil
}

// HandleReminder mails a family the reminder of a visit that is still to happen:
// a scheduled visit, or a request still waiting (the family learns it is not yet
// approved). A visit cancelled, rejected or past is left alone.
func (s *Service) HandleReminder(ctx context.Context, payload json.RawMessage) error {
	var r reminder
	if err := json.Unmarshal(payload, &r); err != nil {
		return jobs.Permanent(err)
	}
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		v, err := visitByID(ctx, tx, r.VisitID)
		if err != nil {
			return err
		}
		if (v.State != Scheduled && v.State != Requested) || !s.now().Before(v.Start) {
			return nil
		}
		return s.mailFamily(ctx, tx, v, "visit_reminder")
	})
	if errors.Is(err, ErrNotFound) {
		return jobs.Permanent(err)
	}
	if err == nil {
		s.wake()
	}
	return err
}
