package messaging

import (
	"context"
	"database/sql"
	"time"

	"github.com/kinlink/kinlink/internal/i18n"
)

// notifyWatched queues the mail that tells a family, in its language, that by
// watched the VideoGram it sent at sentAt, with a link to the conversation.
func (s *Service) notifyWatched(ctx context.Context, tx *sql.Tx, email, locale, by, contactID string, sentAt time.Time) error {
	return s.notify(ctx, tx, email, locale, "videogram_watched", map[string]string{
		"By": by, "SentAt": i18n.Time(locale, sentAt), "ContactID": contactID})
}
