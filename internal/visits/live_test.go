package visits_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/visits"
	"github.com/kinlink/kinlink/internal/visits/rtc"
	"github.com/kinlink/kinlink/internal/visits/rtc/rtctest"
)

// liveWorld is the booking world with an SFU, and Ana's visit with José on Tuesday
// 2 March 2027 09:00–09:20 at FSP, approved; its clock runs from 08:55 that day.
type liveWorld struct {
	*bookingWorld
	sfu   *rtc.SFU
	visit visits.Visit
}

func liveSetup(t *testing.T, db *database.DB) *liveWorld {
	t.Helper()
	w := &liveWorld{bookingWorld: bookingSetup(t, db)}
	v, err := w.book(w.ana, w.jose, w.at("2027-03-02", "09:00"), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.visits.Decide(ctx, w.fspOfficer, v.ID, true, ""); err != nil {
		t.Fatal(err)
	}
	w.visit = v
	w.sfu = w.startSFU(t)
	w.runFrom(w.at("2027-03-02", "08:55"))
	return w
}

// startSFU gives the service a media server of its own.
func (w *liveWorld) startSFU(t *testing.T) *rtc.SFU {
	t.Helper()
	sfu, err := rtc.New(rtc.Config{UDP: "127.0.0.1:0", Loopback: true}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sfu.Close() })
	w.visits.UseSFU(sfu, visits.LiveSettings{Instance: "test", BitrateKbps: 1500, Log: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	return sfu
}

// runFrom sets a clock that runs, from at.
func (w *liveWorld) runFrom(at time.Time) {
	began := time.Now()
	w.visits.SetClock(func() time.Time { return at.Add(time.Since(began)) })
}

func (w *liveWorld) state(t *testing.T) visits.Visit {
	t.Helper()
	v, err := w.visits.Visit(ctx, w.ana, w.visit.ID)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// enter brings Ana and José into their visit, publishing media until ctx ends,
// and waits until it flows both ways.
func (w *liveWorld) enter(t *testing.T, ctx context.Context) (ana, jose *rtctest.Client, room *rtc.Room) {
	t.Helper()
	family, err := w.visits.FamilySeat(ctx, w.ana, w.visit.ID)
	if err != nil {
		t.Fatal(err)
	}
	station, err := w.visits.StationSeat(ctx, w.jose, w.unitB.ID, w.visit.ID)
	if err != nil {
		t.Fatal(err)
	}
	ana, jose = join(t, family, "ana"), join(t, station, "jose")
	go ana.Publish(ctx)
	go jose.Publish(ctx)
	rtctest.Eventually(t, "media both ways", func() bool { return ana.Got("jose") > 50 && jose.Got("ana") > 50 })
	return ana, jose, family.Room
}

func join(t *testing.T, seat visits.Seat, name string) *rtctest.Client {
	c := rtctest.NewClient(t, name)
	c.Join(seat.Room, seat.Role, seat.Role != rtc.Watcher)
	return c
}

func TestALiveVisitIsChargedForItsConnectedMinutes(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := liveSetup(t, db)
		if _, err := w.visits.FamilySeat(ctx, w.ben, w.visit.ID); !errors.Is(err, visits.ErrNotFound) {
			t.Fatalf("another family: %v", err)
		}
		if _, err := w.visits.StationSeat(ctx, w.jose, w.kioskNamed(t, "Unit C"), w.visit.ID); !errors.Is(err, visits.ErrNotHere) {
			t.Fatalf("another kiosk: %v", err)
		}
		if _, err := w.visits.StationSeat(ctx, w.kim, w.unitB.ID, w.visit.ID); !errors.Is(err, visits.ErrNotFound) {
			t.Fatalf("another resident: %v", err)
		}
		family, err := w.visits.FamilySeat(ctx, w.ana, w.visit.ID)
		if err != nil {
			t.Fatal(err)
		}
		station, err := w.visits.StationSeat(ctx, w.jose, w.unitB.ID, w.visit.ID)
		if err != nil || station.Room != family.Room {
			t.Fatalf("the station's seat: %v (same room %t)", err, station.Room == family.Room)
		}
		media, stop := context.WithCancel(context.Background())
		defer stop()
		ana, jose := join(t, family, "ana"), join(t, station, "jose")
		go ana.Publish(media)
		go jose.Publish(media)
		rtctest.Eventually(t, "media both ways", func() bool { return ana.Got("jose") > 50 && jose.Got("ana") > 50 })
		rtctest.Eventually(t, "the visit live", func() bool { return w.state(t).State == visits.Live })

		// The officer watches, audited; then ends the visit with a reason both sides see.
		watch, err := w.visits.WatchSeat(ctx, w.fspOfficer, w.visit.ID)
		if err != nil {
			t.Fatal(err)
		}
		officer := join(t, watch, "officer")
		rtctest.Eventually(t, "the officer watching", func() bool { return officer.Got("ana") > 20 && officer.Got("jose") > 20 })
		if n := len(entries(t, w.world, w.fl.ID, "visit.watch")); n != 1 {
			t.Fatalf("%d watches audited", n)
		}
		if _, err := w.visits.WatchSeat(ctx, w.lciAdmin, w.visit.ID); err == nil {
			t.Fatal("another facility's admin watches")
		}
		time.Sleep(2 * time.Second)
		if err := w.visits.EndByStaff(ctx, w.fspOfficer, w.visit.ID, "Count time"); err != nil {
			t.Fatal(err)
		}
		rtctest.Eventually(t, "both told", func() bool {
			a, j := ana.LastState(), jose.LastState()
			return a.State == rtc.StateEnded && a.By == "staff" && a.Reason == "Count time" && j.State == rtc.StateEnded
		})
		rtctest.Eventually(t, "the visit completed", func() bool { return w.state(t).State == visits.Completed })
		v := w.state(t)
		// Under a minute connected: one minute charged at 16¢, the rest of $3.20 back.
		if v.ChargedCents != 16 || v.Reason != "Count time" || v.EndedBy != "staff" || v.Connected <= 0 || v.Connected > time.Minute {
			t.Fatalf("visit %+v", v)
		}
		if b := w.wallet(t, w.ana); b != 2000-16 {
			t.Fatalf("wallet %d", b)
		}
		m := w.mails(t, "ana@example.org")
		if last := m[len(m)-1]; last.Template != "visit_ended" || last.Data["Charged"] != "$0.16" || last.Data["Released"] != "$3.04" ||
			last.Data["ConnectedMinutes"] != "1" || last.Data["StaffReason"] != "Count time" {
			t.Fatalf("receipt %+v", last.Data)
		}
		if _, err := w.visits.FamilySeat(ctx, w.ana, w.visit.ID); !errors.Is(err, visits.ErrOver) {
			t.Fatalf("rejoining a completed visit: %v", err)
		}
		w.verify(t)
	})
}

func TestAVisitTheResidentMissesCostsNothing(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := liveSetup(t, db)
		w.runFrom(w.at("2027-03-02", "08:40"))
		if _, err := w.visits.FamilySeat(ctx, w.ana, w.visit.ID); !errors.Is(err, visits.ErrNotOpen) {
			t.Fatalf("20 minutes early: %v", err)
		}
		w.runFrom(w.at("2027-03-02", "08:51"))
		seat, err := w.visits.FamilySeat(ctx, w.ana, w.visit.ID)
		if err != nil {
			t.Fatal(err)
		}
		media, stop := context.WithCancel(context.Background())
		defer stop()
		ana := join(t, seat, "ana")
		go ana.Publish(media)
		rtctest.Eventually(t, "waiting", func() bool { return ana.LastState().State == rtc.StateWaiting })
		seat.Room.End("system", "time_up")
		rtctest.Eventually(t, "the visit missed", func() bool { return w.state(t).State == visits.Missed })
		if v := w.state(t); v.Reason != visits.ReasonResidentAbsent || v.ChargedCents != 0 || w.wallet(t, w.ana) != 2000 {
			t.Fatalf("visit %+v, wallet %d", v, w.wallet(t, w.ana))
		}
		w.verify(t)
	})
}

func TestAPrivilegedVisitIsNeverWatched(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := liveSetup(t, db)
		if _, err := db.Write().ExecContext(ctx, "UPDATE visits SET privileged = TRUE WHERE id = $1", w.visit.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := w.visits.WatchSeat(ctx, w.fspOfficer, w.visit.ID); !errors.Is(err, visits.ErrPrivileged) {
			t.Fatalf("watching a privileged visit: %v", err)
		}
		seat, err := w.visits.FamilySeat(ctx, w.ana, w.visit.ID)
		if err != nil {
			t.Fatal(err)
		}
		// The room itself refuses a watcher too, whoever asks.
		if err := seat.Room.Join(ctx, rtc.Watcher, rtctest.ServerEnd{Pipe: rtctest.NewPipe()}); !errors.Is(err, rtc.ErrPrivileged) {
			t.Fatalf("the room let a watcher in: %v", err)
		}
		if n := len(entries(t, w.world, w.fl.ID, "visit.watch")); n != 0 {
			t.Fatalf("%d watches audited", n)
		}
	})
}

// A server that stops during a visit loses the room, not the visit: both sides
// rejoin on the next server, the time counted before goes on, and the time lost
// is not charged.
func TestAVisitGoesOnAfterTheServerStops(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := liveSetup(t, db)
		w.runFrom(w.at("2027-03-02", "09:00"))
		media, stop := context.WithCancel(context.Background())
		defer stop()
		w.enter(t, media)
		// Connected long enough for the room to keep its count (every 10 seconds).
		rtctest.Eventually(t, "connected time kept", func() bool { return w.state(t).Connected > 0 })
		kept := w.state(t).Connected
		w.sfu.Close() // the server stops: the room is gone, the visit stays live
		if v := w.state(t); v.State != visits.Live {
			t.Fatalf("after the stop: %s", v.State)
		}
		w.sfu = w.startSFU(t)
		_, _, room := w.enter(t, media)
		if c := room.Connected(); c < kept {
			t.Fatalf("the new room counts from %v, the old one kept %v", c, kept)
		}
		room.End("family", "hung_up")
		rtctest.Eventually(t, "completed", func() bool { return w.state(t).State == visits.Completed })
		v := w.state(t)
		minutes := int64((v.Connected + time.Minute - 1) / time.Minute)
		if v.ChargedCents != visits.PriceCents(160, int(minutes)) || v.Connected < kept || v.Connected > kept+30*time.Second {
			t.Fatalf("charged %d for %v connected (kept %v before the stop)", v.ChargedCents, v.Connected, kept)
		}
		w.verify(t)
	})
}

// testWriter logs to the test.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// The agency caps each side's video; where it sets nothing, the server's setting
// does. The cap is written into the offer every participant answers.
func TestTheAgencysVideoCapIsInTheOffer(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := liveSetup(t, db)
		seat, err := w.visits.FamilySeat(ctx, w.ana, w.visit.ID)
		if err != nil {
			t.Fatal(err)
		}
		ana := join(t, seat, "ana")
		rtctest.Eventually(t, "an offer", func() bool { return len(ana.Offers()) == 1 })
		if sdp := ana.Offers()[0]; !strings.Contains(sdp, "b=AS:1500") {
			t.Fatalf("the server's cap is not in the offer:\n%s", sdp)
		}
		seat.Room.End("system", "time_up")
		rtctest.Eventually(t, "the room gone", func() bool { return w.sfu.Rooms() == 0 })

		policies := facility.Policies{StampPriceCents: 50, MessageMaxChars: 6000, VideoGramSeconds: 30, MessageRetentionDays: 365,
			RecordingRetentionDays: 365, ApprovalForVisits: true, VideoKbps: 800}
		if err := w.fac.UpdatePolicies(ctx, facility.Operator, w.fl.ID, policies); err != nil {
			t.Fatal(err)
		}
		v, err := w.book(w.ana, w.kim, w.at("2027-03-03", "09:20"), "")
		if err != nil {
			t.Fatal(err)
		}
		if err := w.visits.Decide(ctx, w.fspOfficer, v.ID, true, ""); err != nil {
			t.Fatal(err)
		}
		w.runFrom(w.at("2027-03-03", "09:15"))
		seat, err = w.visits.FamilySeat(ctx, w.ana, v.ID)
		if err != nil {
			t.Fatal(err)
		}
		ana = join(t, seat, "ana")
		rtctest.Eventually(t, "an offer", func() bool { return len(ana.Offers()) == 1 })
		if sdp := ana.Offers()[0]; !strings.Contains(sdp, "b=AS:800\r\nb=TIAS:800000") {
			t.Fatalf("the agency's cap is not in the offer:\n%s", sdp)
		}
		policies.VideoKbps = 50
		if err := w.fac.UpdatePolicies(ctx, facility.Operator, w.fl.ID, policies); err == nil {
			t.Fatal("a cap of 50 kbit/s was taken")
		}
	})
}

// A family's camera check is one room however often they start it, so no family
// holds the server's checks from the others.
func TestOneCameraCheckAFamily(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := liveSetup(t, db)
		first, err := w.visits.CheckSeat(ctx, w.ana)
		if err != nil {
			t.Fatal(err)
		}
		again, err := w.visits.CheckSeat(ctx, w.ana)
		if err != nil || again.Room != first.Room || w.sfu.Checks() != 1 {
			t.Fatalf("a second check: %v, same room %t, %d checks", err, again.Room == first.Room, w.sfu.Checks())
		}
		if other, err := w.visits.CheckSeat(ctx, w.ben); err != nil || other.Room == first.Room || w.sfu.Checks() != 2 {
			t.Fatalf("another family's check: %v, %d checks", err, w.sfu.Checks())
		}
	})
}
