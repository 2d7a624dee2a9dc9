package messaging

import (
	"context"
	"sync"
	"time"
)

// News of delivered messages, for open kiosk pages: a page asks with the
// fingerprint it has (Latest) and the answer comes as soon as a message is
// delivered to that resident, or after a while with nothing new. In one process the
// delivery wakes the waiting request at once; a second check every second covers
// deliveries made by another server process.
type news struct {
	mu      sync.Mutex
	waiting map[string]map[chan struct{}]struct{}
}

func (n *news) subscribe(residentID string) (chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	n.mu.Lock()
	if n.waiting == nil {
		n.waiting = map[string]map[chan struct{}]struct{}{}
	}
	if n.waiting[residentID] == nil {
		n.waiting[residentID] = map[chan struct{}]struct{}{}
	}
	n.waiting[residentID][ch] = struct{}{}
	n.mu.Unlock()
	return ch, func() {
		n.mu.Lock()
		delete(n.waiting[residentID], ch)
		if len(n.waiting[residentID]) == 0 {
			delete(n.waiting, residentID)
		}
		n.mu.Unlock()
	}
}

func (n *news) publish(residentID string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for ch := range n.waiting[residentID] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// NewsWait is how long WaitForNews holds a request with nothing new.
const NewsWait = 15 * time.Second

// WaitForNews returns the resident's inbox fingerprint once it differs from after,
// or after NewsWait (or when ctx ends) with the fingerprint unchanged.
func (s *Service) WaitForNews(ctx context.Context, residentID, after string) (string, error) {
	ch, cancel := s.news.subscribe(residentID)
	defer cancel()
	deadline := time.NewTimer(NewsWait)
	defer deadline.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		cur, err := s.Latest(ctx, residentID)
		if err != nil || cur != after {
			return cur, err
		}
		select {
		case <-ch:
		case <-tick.C:
		case <-deadline.C:
			return cur, nil
		case <-ctx.Done():
			return cur, nil
		}
	}
}
