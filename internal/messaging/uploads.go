package messaging

import (
	"sync"
	"time"

	"github.com/kinlink/kinlink/internal/problem"
)

// MaxUploads is how many sends with photos one account may have arriving at once.
// A family sends one message at a time; a second covers a page sent again while
// the first is still on its way. More would only hold memory, disk and
// connections for one account.
const MaxUploads = 2

// ErrUploadsBusy is a send whose photos would start arriving while MaxUploads of
// the account's sends are still arriving.
var ErrUploadsBusy = problem.Declare(problem.RateLimited, "uploads_busy", "messaging: too many messages with photos arriving at once").
	Say("conversation.uploads_busy").After(30 * time.Second)

// uploads counts each account's sends whose photos are arriving. It lives in this
// process: with several servers, each allows MaxUploads.
type uploads struct {
	mu sync.Mutex
	n  map[string]int
}

// Uploading takes one of the account's MaxUploads places for a send whose photos
// are about to arrive, or refuses with ErrUploadsBusy. The place is the caller's
// until it calls done, which it must, when its request ends however it ends.
func (s *Service) Uploading(accountID string) (done func(), err error) {
	u := &s.uploads
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.n[accountID] >= MaxUploads {
		return nil, ErrUploadsBusy
	}
	if u.n == nil {
		u.n = map[string]int{}
	}
	u.n[accountID]++
	var once sync.Once
	return func() {
		once.Do(func() {
			u.mu.Lock()
			defer u.mu.Unlock()
			if u.n[accountID]--; u.n[accountID] == 0 {
				delete(u.n, accountID) // the map holds only accounts uploading now
			}
		})
	}, nil
}
