package messaging

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mtibben/confusables"
	"golang.org/x/text/unicode/norm"

	"github.com/kinlink/kinlink/internal/audit"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/problem"
	"github.com/kinlink/kinlink/internal/textsafe"
)

// The watch list: words and phrases an agency wants a person to read first. Matching
// ignores case, accents and look-alike letters of other scripts, and respects word
// boundaries: "gun" matches "a GUN." and "a gսn" (Armenian ս) but not "begun".

// WatchList returns an agency's phrases.
func (s *Service) WatchList(ctx context.Context, agencyID string) ([]string, error) {
	rows, err := s.db.Read().QueryContext(ctx, "SELECT phrase FROM watch_words WHERE agency_id = $1 ORDER BY folded", agencyID)
	if err != nil {
		return nil, fmt.Errorf("messaging: watch list: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// ReviewSettings are what an agency sends to review: everything, or messages with
// a phrase of the watch list.
type ReviewSettings struct {
	ReviewAll bool
	Phrases   []string
	// ReplyStamps is what a resident's reply costs, 0 to 5 stamps; 0 (the default)
	// makes replies free. A priced reply uses one a family prepaid, or the
	// resident's trust money where they choose to pay from it.
	ReplyStamps int
	// What the agency decides for VideoGrams: the price in stamps (1 to 10,
	// default 3), whether staff review every family's clip (default yes) and how
	// many days clips are kept (7 to 3650, default 90).
	VideoGramStamps        int
	ReviewVideoGrams       bool
	VideoGramRetentionDays int
	// VideoGramReplies lets residents record VideoGram replies at the kiosk
	// (default no); they are paid as text replies are, and always reviewed.
	VideoGramReplies bool
}

// Refusals of the VideoGram settings.
var (
	ErrBadVideoGramPrice = problem.Declare(problem.Invalid, "invalid_request", "messaging: a VideoGram costs 1 to 10 stamps").
				On("videogram_stamps", "videogram_price")
	ErrBadVideoGramRetention = problem.Declare(problem.Invalid, "invalid_request", "messaging: clips are kept 7 to 3650 days").
					On("videogram_retention_days", "videogram_retention")
)

// ErrBadReplyPrice is a reply price outside 0–5 stamps.
var ErrBadReplyPrice = problem.Declare(problem.Invalid, "invalid_request", "messaging: a reply costs 0 to 5 stamps").On("reply_price_stamps", "reply_price")

// BadPhraseError names a watch-list line that cannot be used.
type BadPhraseError struct{ Phrase string }

func (e *BadPhraseError) Error() string { return "messaging: watch phrase not usable: " + e.Phrase }

var errBadPhrase = problem.Declare(problem.Invalid, "invalid_request", "messaging: watch phrase not usable").
	On("watch", "invalid").Say("review.bad_phrase")

// Problem is the refusal, quoting the phrase.
func (e *BadPhraseError) Problem() *problem.Error { return errBadPhrase.With(e.Phrase) }

// Review returns an agency's review settings.
func (s *Service) Review(ctx context.Context, agencyID string) (ReviewSettings, error) {
	var r ReviewSettings
	if err := s.db.Read().QueryRowContext(ctx, `SELECT COALESCE(mp.review_all, FALSE), COALESCE(mp.reply_price_stamps, 0),
		COALESCE(mp.videogram_stamps, 3), COALESCE(mp.review_videograms, TRUE), COALESCE(mp.videogram_retention_days, 90),
		COALESCE(mp.videogram_replies, FALSE)
		FROM agencies g`+policyJoin+" WHERE g.id = $1", agencyID).
		Scan(&r.ReviewAll, &r.ReplyStamps, &r.VideoGramStamps, &r.ReviewVideoGrams, &r.VideoGramRetentionDays, &r.VideoGramReplies); err != nil {
		return r, fmt.Errorf("messaging: review settings: %w", err)
	}
	var err error
	r.Phrases, err = s.WatchList(ctx, agencyID)
	return r, err
}

// MaxWatchPhrases bounds an agency's watch list: every message is matched against
// all of it.
const MaxWatchPhrases = 1000

// ErrWatchListFull refuses a watch list longer than MaxWatchPhrases.
var ErrWatchListFull = problem.Declare(problem.Invalid, "invalid_request", "messaging: a watch list holds at most 1000 words and phrases").
	On("watch", "too_many").Say("review.watch_full").With(MaxWatchPhrases)

// SetReview replaces an agency's review settings; agency admins may. A phrase that is
// too long or not plain text is refused by name, and nothing changes.
func (s *Service) SetReview(ctx context.Context, by facility.Access, r ReviewSettings) error {
	if !by.Has(facility.AgencyAdmin, "") {
		return facility.ErrForbidden
	}
	if r.ReplyStamps < 0 || r.ReplyStamps > 5 {
		return ErrBadReplyPrice
	}
	if r.VideoGramStamps < 1 || r.VideoGramStamps > 10 {
		return ErrBadVideoGramPrice
	}
	if r.VideoGramRetentionDays < 7 || r.VideoGramRetentionDays > 3650 {
		return ErrBadVideoGramRetention
	}
	var phrases []string
	seen := map[string]bool{} // a phrase given twice (in any case or accents) counts once
	for _, p := range r.Phrases {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		folded := foldForWatch(p)
		if folded == "" || len([]rune(p)) > 100 || !cleanLine(p) {
			return &BadPhraseError{Phrase: p}
		}
		if !seen[folded] {
			seen[folded] = true
			phrases = append(phrases, p)
		}
	}
	if len(phrases) > MaxWatchPhrases {
		return ErrWatchListFull
	}
	now := time.Now().UTC()
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO message_policies (agency_id, review_all, reply_price_stamps, watch_version,
			videogram_stamps, review_videograms, videogram_retention_days, videogram_replies) VALUES ($1, $2, $3, 1, $4, $5, $6, $7)
			ON CONFLICT (agency_id) DO UPDATE SET review_all = $2, reply_price_stamps = $3, watch_version = message_policies.watch_version + 1,
			videogram_stamps = $4, review_videograms = $5, videogram_retention_days = $6, videogram_replies = $7`,
			by.AgencyID, r.ReviewAll, r.ReplyStamps, r.VideoGramStamps, r.ReviewVideoGrams, r.VideoGramRetentionDays, r.VideoGramReplies); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM watch_words WHERE agency_id = $1", by.AgencyID); err != nil {
			return err
		}
		for _, p := range phrases {
			if _, err := tx.ExecContext(ctx, "INSERT INTO watch_words (agency_id, phrase, folded, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
				by.AgencyID, p, foldForWatch(p), now); err != nil {
				return err
			}
		}
		return audit.Record(ctx, s.db, tx, audit.Entry{Actor: "staff:" + by.AccountID, Action: "review.settings", AgencyID: by.AgencyID,
			Detail: fmt.Sprintf("review all: %t; %d watch phrases; reply price %d stamps; VideoGram %d stamps, reviewed %t, kept %d days, replies %t",
				r.ReviewAll, len(phrases), r.ReplyStamps, r.VideoGramStamps, r.ReviewVideoGrams, r.VideoGramRetentionDays, r.VideoGramReplies)})
	})
}

// foldWords folds text for comparing wordings: without invisible format characters
// (zero-width spaces, soft hyphens, joiners), which would otherwise hide "g\u200bun"
// from a watch for "gun" while the kiosk shows "gun"; with compatibility forms
// (fullwidth "ｇｕｎ", circled "ⓖⓤⓝ", mathematical "𝐠𝐮𝐧") as their plain
// letters (NFKC); then as names are folded (case, accents, spacing).
func foldWords(s string) string {
	return facility.FoldName(norm.NFKC.String(strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Cf, r) {
			return -1
		}
		return r
	}, s)))
}

// foldForWatch folds text and watch phrases for matching: as foldWords, and then
// every letter outside ASCII as its look-alike in Unicode's confusables data (the
// UTS #39 skeleton), so "las drоgas" with a Cyrillic о, a Greek ο or an Armenian օ
// reads as "las drogas". ASCII letters and digits stay themselves: the data also
// makes "m" look like "rn", "1" like "l" and "0" like "O", which would make "burn"
// meet "bum" and "modern" meet "modem"; a look-alike that comes out as one of those
// spellings is read as the ASCII letter ("rn" as "m", "O" as "o"). The fold is for
// matching only: messages and phrases are kept and shown as written.
func foldForWatch(s string) string {
	s = foldWords(s)
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	seen := map[rune]string{} // a text uses few letters many times
	for _, r := range s {
		if r < utf8.RuneSelf {
			b.WriteRune(r)
			continue
		}
		l, ok := seen[r]
		if !ok {
			l = lookAlike(r)
			seen[r] = l
		}
		b.WriteString(l)
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

// lookAlike is the letters r is confusable with, folded as foldWords folds: the
// skeleton's marks dropped (a Greek η is "n" with a mark below), its spelling of
// ASCII letters undone, and case folded.
func lookAlike(r rune) string {
	sk := confusables.Skeleton(string(r))
	if sk == string(r) {
		return sk
	}
	switch sk {
	case "rn":
		return "m"
	case "O":
		return "o"
	}
	return facility.FoldName(sk)
}

func cleanLine(s string) bool { return !textsafe.HasHidden(s) }

// watchList is an agency's watch list as matching needs it, at one version.
type watchList struct {
	version int64
	phrases []watchPhrase
}

type watchPhrase struct{ phrase, folded string }

// watchLists keeps each agency's watch list in memory. Every send reads the
// agency's watch_version with its contact, so a change made through any server is
// seen at the next message, and the list itself is read once per change.
type watchLists struct {
	mu    sync.Mutex
	lists map[string]watchList
}

// watchMatch returns the first phrase of the agency's list the text contains, or "".
// version is the agency's watch_version as the sender read it.
func (s *Service) watchMatch(ctx context.Context, agencyID string, version int64, text string) (string, error) {
	list, err := s.watchListAt(ctx, agencyID, version)
	if err != nil {
		return "", err
	}
	if len(list.phrases) == 0 {
		return "", nil
	}
	folded := foldForWatch(text)
	for _, p := range list.phrases {
		if containsWord(folded, p.folded) {
			return p.phrase, nil
		}
	}
	return "", nil
}

func (s *Service) watchListAt(ctx context.Context, agencyID string, version int64) (watchList, error) {
	s.watch.mu.Lock()
	list, ok := s.watch.lists[agencyID]
	s.watch.mu.Unlock()
	if ok && list.version >= version {
		return list, nil
	}
	// Read the version with the list: a change between the sender's read and this
	// one gives a newer list, never an older one under a newer number.
	err := s.db.QueryRow(ctx, "SELECT COALESCE(mp.watch_version, 0) FROM agencies g"+policyJoin+" WHERE g.id = $1", agencyID).Scan(&list.version)
	if err != nil {
		return list, fmt.Errorf("messaging: watch list: %w", err)
	}
	rows, err := s.db.Query(ctx, "SELECT phrase, folded FROM watch_words WHERE agency_id = $1", agencyID)
	if err != nil {
		return list, fmt.Errorf("messaging: watch list: %w", err)
	}
	defer rows.Close()
	list.phrases = nil
	for rows.Next() {
		var p watchPhrase
		if err := rows.Scan(&p.phrase, &p.folded); err != nil {
			return list, err
		}
		p.folded = foldForWatch(p.phrase) // folding may have learned more since it was stored
		list.phrases = append(list.phrases, p)
	}
	if err := rows.Err(); err != nil {
		return list, err
	}
	s.watch.mu.Lock()
	if s.watch.lists == nil {
		s.watch.lists = map[string]watchList{}
	}
	if cur, ok := s.watch.lists[agencyID]; !ok || cur.version <= list.version {
		s.watch.lists[agencyID] = list
	}
	s.watch.mu.Unlock()
	return list, nil
}

// containsWord reports whether phrase occurs in text with no letter or digit right
// before or after it.
func containsWord(text, phrase string) bool { return indexWord(text, phrase, 0) >= 0 }

// indexWord returns where phrase first occurs in text at or after start with no
// letter or digit right before or after it, or -1.
func indexWord(text, phrase string, start int) int {
	for start <= len(text) {
		i := strings.Index(text[start:], phrase)
		if i < 0 {
			return -1
		}
		i += start
		end := i + len(phrase)
		before := i == 0 || boundary(lastRune(text[:i]), firstRune(phrase))
		after := end == len(text) || boundary(lastRune(phrase), firstRune(text[end:]))
		if before && after {
			return i
		}
		start = i + 1
	}
	return -1
}

func isWordChar(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// boundary reports whether a word may end between a and b. Scripts written without
// spaces between words (Chinese, Japanese, Thai and their neighbours) have no
// boundary to see, so there a phrase matches wherever it occurs.
func boundary(a, b rune) bool {
	return !isWordChar(a) || !isWordChar(b) || spaceless(a) || spaceless(b)
}

func spaceless(r rune) bool {
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Thai, unicode.Lao, unicode.Khmer, unicode.Myanmar)
}

func lastRune(s string) rune {
	r, _ := utf8.DecodeLastRuneInString(s)
	return r
}

func firstRune(s string) rune {
	for _, r := range s {
		return r
	}
	return 0
}
