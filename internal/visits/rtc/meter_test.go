package rtc

import (
	"testing"
	"time"
)

// The meter counts the time both sides' media flowed, and the drops between of 30
// seconds or less; a longer drop is not charged at all, nor is the time after the
// last media.
func TestMeterChargesConnectedTimeAndShortDropsOnly(t *testing.T) {
	start := time.Date(2027, 3, 2, 14, 0, 0, 0, time.UTC)
	now := start
	r, err := newRoom(&SFU{}, RoomConfig{ID: "v", Ends: start.Add(20 * time.Minute), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	r.lastTick = now
	lives := 0
	r.cfg.OnLive = func() { lives++ }
	// step advances the clock a second at a time for d; the sides whose media flow
	// send a packet each second.
	step := func(d time.Duration, family, resident bool) {
		for range int(d / time.Second) {
			now = now.Add(time.Second)
			if family {
				r.lastPacket[Family].Store(now.UnixNano())
			}
			if resident {
				r.lastPacket[Resident].Store(now.UnixNano())
			}
			r.meter(now)
		}
	}
	step(10*time.Second, true, false) // the family waits: nothing counts
	if c := r.Connected(); c != 0 {
		t.Fatalf("waiting counted %v", c)
	}
	step(60*time.Second, true, true)
	step(20*time.Second, true, false) // a short drop: charged
	step(30*time.Second, true, true)
	step(40*time.Second, false, true) // a long drop: not charged
	step(10*time.Second, true, true)
	step(25*time.Second, false, false) // both gone at the end: not charged
	r.End("system", "time_up")
	// 60 + 20 + 30 + 10, give or take the second in which a flow is first seen.
	if got := r.end.Connected; got < 118*time.Second || got > 121*time.Second {
		t.Fatalf("connected %v, want about 2m0s", got)
	}
	if !r.end.Live {
		t.Fatal("never live")
	}
}
