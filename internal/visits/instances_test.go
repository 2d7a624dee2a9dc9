package visits_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/visits"
	"github.com/kinlink/kinlink/internal/visits/rtc"
)

// directory is a registry of instances as a test decides it.
type directory struct {
	mu    sync.Mutex
	alive map[string]bool
}

func (d *directory) Where(_ context.Context, name string) (string, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return "http://" + name + ".internal:8080", d.alive[name], nil
}

func (d *directory) set(name string, alive bool) {
	d.mu.Lock()
	d.alive[name] = alive
	d.mu.Unlock()
}

// instance is a second server on the same database: a service of its own with a
// media server of its own, called name.
func (w *liveWorld) instance(t *testing.T, name string, dir visits.Directory, clock func() time.Time) *visits.Service {
	t.Helper()
	caps, err := visits.ParseRateCaps(visits.DefaultRateCaps)
	if err != nil {
		t.Fatal(err)
	}
	s := visits.NewService(w.db, w.fac, w.contacts, w.ledger, caps, nil)
	s.SetClock(clock)
	sfu, err := rtc.New(rtc.Config{UDP: "127.0.0.1:0", Loopback: true}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sfu.Close() })
	s.UseSFU(sfu, visits.LiveSettings{Instance: name, Instances: dir, BitrateKbps: 1500, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return s
}

func (w *liveWorld) roomInstance(t *testing.T) string {
	t.Helper()
	var name string
	if err := w.db.Read().QueryRowContext(ctx, "SELECT room_instance FROM visits WHERE id = $1", w.visit.ID).Scan(&name); err != nil {
		t.Fatal(err)
	}
	return name
}

// A visit's room lives on one instance. Joins at another instance that is there
// are sent to it; when it is gone, the room is taken over, and when two
// instances take it over at once (ten joins on each), one wins: every join on
// the winner is in its one room, every join on the other is sent to the winner.
func TestARoomIsTakenOverByOneInstance(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := liveSetup(t, db)
		began, from := time.Now(), w.at("2027-03-02", "08:55")
		clock := func() time.Time { return from.Add(time.Since(began)) }
		dir := &directory{alive: map[string]bool{"a": true, "b": true}}
		a, b := w.instance(t, "a", dir, clock), w.instance(t, "b", dir, clock)
		if _, err := db.Write().ExecContext(ctx, "UPDATE visits SET room_instance = 'gone' WHERE id = $1", w.visit.ID); err != nil {
			t.Fatal(err)
		}

		type result struct {
			on   string
			seat visits.Seat
			err  error
		}
		results := make(chan result, 20)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range 20 {
			on, s := "a", a
			if i%2 == 1 {
				on, s = "b", b
			}
			wg.Go(func() {
				<-start
				seat, err := s.FamilySeat(ctx, w.ana, w.visit.ID)
				results <- result{on, seat, err}
			})
		}
		close(start)
		wg.Wait()
		close(results)
		winner := w.roomInstance(t)
		if winner != "a" && winner != "b" {
			t.Fatalf("room_instance %q after the race", winner)
		}
		var room *rtc.Room
		for r := range results {
			var away *visits.Elsewhere
			switch {
			case r.on == winner && r.err == nil:
				if room == nil {
					room = r.seat.Room
				}
				if r.seat.Room != room {
					t.Fatal("two rooms on the winner")
				}
			case r.on != winner && errors.As(r.err, &away):
				if away.Instance != winner || away.URL != "http://"+winner+".internal:8080" {
					t.Fatalf("sent to %+v, the room is on %s", away, winner)
				}
			default:
				t.Fatalf("a join on %s (the room on %s): %v", r.on, winner, r.err)
			}
		}
		if room == nil {
			t.Fatal("no join was let in")
		}

		// The winner is gone: the other takes the room over at its next join.
		loser := map[string]*visits.Service{"a": b, "b": a}[winner]
		dir.set(winner, false)
		seat, err := loser.FamilySeat(ctx, w.ana, w.visit.ID)
		if err != nil {
			t.Fatalf("taking over from a gone instance: %v", err)
		}
		if seat.Room == room || w.roomInstance(t) == winner {
			t.Fatalf("the room was not taken over: room_instance %q", w.roomInstance(t))
		}
		// The first winner comes back (restarted under its name): the room stays
		// where it is now, and its joins go there.
		dir.set(winner, true)
		first := map[string]*visits.Service{"a": a, "b": b}[winner]
		var away *visits.Elsewhere
		if _, err := first.FamilySeat(ctx, w.ana, w.visit.ID); !errors.As(err, &away) || away.Instance == winner {
			t.Fatalf("a join on the instance that came back: %v", err)
		}
	})
}
