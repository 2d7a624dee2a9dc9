package rtc_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/kinlink/kinlink/internal/visits/rtc"
	"github.com/kinlink/kinlink/internal/visits/rtc/rtctest"
)

func newSFU(t *testing.T) *rtc.SFU {
	t.Helper()
	s, err := rtc.New(rtc.Config{UDP: "127.0.0.1:0", Loopback: true}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestAVisitBothWaysWithAWatcherWhoCannotSend(t *testing.T) {
	sfu := newSFU(t)
	var ends = make(chan rtc.End, 1)
	var live atomic.Bool
	room, opened, err := sfu.Open(rtc.RoomConfig{ID: "visit-1", Ends: time.Now().Add(time.Minute), BitrateKbps: 1500,
		OnLive: func() { live.Store(true) }, OnEnd: func(e rtc.End) { ends <- e }})
	if err != nil || !opened {
		t.Fatal(opened, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	family, resident, officer := rtctest.NewClient(t, "family"), rtctest.NewClient(t, "resident"), rtctest.NewClient(t, "officer")
	family.Join(room, rtc.Family, true)
	rtctest.Eventually(t, "the family waiting", func() bool { return family.LastState().State == rtc.StateWaiting })
	go family.Publish(ctx)
	resident.Join(room, rtc.Resident, true)
	go resident.Publish(ctx)
	rtctest.Eventually(t, "media both ways", func() bool { return family.Got("resident") > 50 && resident.Got("family") > 50 })
	rtctest.Eventually(t, "connected", func() bool {
		return live.Load() && family.LastState().State == rtc.StateConnected && resident.LastState().State == rtc.StateConnected
	})

	// The officer watches: both sides reach them; what they try to send reaches no one.
	officer.Join(room, rtc.Watcher, true)
	go officer.Publish(ctx)
	rtctest.Eventually(t, "the watcher receiving both sides", func() bool { return officer.Got("family") > 50 && officer.Got("resident") > 50 })
	time.Sleep(time.Second)
	if family.Got("officer") != 0 || resident.Got("officer") != 0 || family.Got("family") != 0 {
		t.Fatalf("the watcher was heard: family got %d, resident got %d", family.Got("officer"), resident.Got("officer"))
	}
	if n := room.Participants(); n[rtc.Watcher] != 1 || n[rtc.Family] != 1 || n[rtc.Resident] != 1 {
		t.Fatalf("participants %v", n)
	}

	// The resident's connection drops: the family sees them reconnecting; they come
	// back on a new connection and the media flows again.
	resident.PC.Close()
	rtctest.ServerEnd{Pipe: resident.Pipe}.Close("gone")
	rtctest.Eventually(t, "reconnecting", func() bool { return family.LastState().State == rtc.StateReconnecting })
	back := rtctest.NewClient(t, "resident")
	back.Join(room, rtc.Resident, true)
	go back.Publish(ctx)
	rtctest.Eventually(t, "connected again", func() bool { return back.Got("family") > 50 && family.LastState().State == rtc.StateConnected })

	// The family hangs up: everyone is told who ended it.
	family.Pipe.ToServer <- rtc.Message{Type: rtc.TypeEnd}
	var e rtc.End
	select {
	case e = <-ends:
	case <-time.After(10 * time.Second):
		t.Fatal("the room did not end")
	}
	if e.By != "family" || e.Reason != "hung_up" || !e.Live || !e.Joined[rtc.Family] || !e.Joined[rtc.Resident] || e.Connected < 2*time.Second {
		t.Fatalf("end %+v", e)
	}
	rtctest.Eventually(t, "everyone told", func() bool {
		for _, c := range []*rtctest.Client{back, officer} {
			if s := c.LastState(); s.State != rtc.StateEnded || s.By != "family" {
				return false
			}
		}
		return true
	})
	if _, ok := sfu.Room("visit-1"); ok {
		t.Fatal("the room is still open")
	}
	if err := <-family.Joined; err != nil {
		t.Fatalf("the family's join: %v", err)
	}
}

func TestAPrivilegedVisitRefusesWatchersAndRecordsNothing(t *testing.T) {
	sfu := newSFU(t)
	sink := &countingSink{}
	room, _, err := sfu.Open(rtc.RoomConfig{ID: "visit-2", Ends: time.Now().Add(time.Minute), Privileged: true, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	if err := room.Join(context.Background(), rtc.Watcher, rtctest.ServerEnd{Pipe: rtctest.NewPipe()}); !errors.Is(err, rtc.ErrPrivileged) {
		t.Fatalf("a watcher: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	family, resident := rtctest.NewClient(t, "family"), rtctest.NewClient(t, "resident")
	family.Join(room, rtc.Family, true)
	resident.Join(room, rtc.Resident, true)
	go family.Publish(ctx)
	go resident.Publish(ctx)
	rtctest.Eventually(t, "media both ways", func() bool { return family.Got("resident") > 50 && resident.Got("family") > 50 })
	room.End("staff", "Count time")
	if n := sink.packets.Load(); n != 0 {
		t.Fatalf("a privileged visit reached the recorder: %d packets", n)
	}
}

func TestTheSlotsEndEndsTheRoom(t *testing.T) {
	sfu := newSFU(t)
	ends := make(chan rtc.End, 1)
	room, _, err := sfu.Open(rtc.RoomConfig{ID: "visit-3", Ends: time.Now().Add(2 * time.Second), OnEnd: func(e rtc.End) { ends <- e }})
	if err != nil {
		t.Fatal(err)
	}
	family := rtctest.NewClient(t, "family")
	family.Join(room, rtc.Family, true)
	select {
	case e := <-ends:
		if e.By != "system" || e.Reason != "time_up" || e.Live || !e.Joined[rtc.Family] || e.Joined[rtc.Resident] {
			t.Fatalf("end %+v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the slot's end did not end the room")
	}
	rtctest.Eventually(t, "the family told", func() bool { return family.LastState().State == rtc.StateEnded })
	if err := room.Join(context.Background(), rtc.Family, rtctest.ServerEnd{Pipe: rtctest.NewPipe()}); !errors.Is(err, rtc.ErrEnded) {
		t.Fatalf("joining an ended room: %v", err)
	}
}

type countingSink struct{ packets atomic.Int64 }

func (s *countingSink) WriteRTP(rtc.Role, webrtc.RTPCodecType, *rtp.Packet) { s.packets.Add(1) }
func (s *countingSink) Close()                                              {}

// The camera check: a family's own media comes back to them through the server.
func TestAnEchoRoomSendsAFamilyTheirOwnMedia(t *testing.T) {
	sfu := newSFU(t)
	room, _, err := sfu.Open(rtc.RoomConfig{ID: "check-1", Ends: time.Now().Add(time.Minute), Echo: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	family := rtctest.NewClient(t, "family")
	family.Join(room, rtc.Family, true)
	go family.Publish(ctx)
	rtctest.Eventually(t, "the family's own media back", func() bool {
		return family.Got("family") > 50 && family.LastState().State == rtc.StateConnected
	})
	if err := room.Join(ctx, rtc.Watcher, rtctest.ServerEnd{Pipe: rtctest.NewPipe()}); err == nil {
		t.Fatal("a watcher joined a camera check")
	}
}

// A side that joins again sends a new stream (its own SSRC, sequence numbers and
// timestamps). What the room forwards goes on as one stream: a browser receiving it
// would drop packets numbered far from the ones before and show a frozen picture.
func TestASideJoiningAgainGoesOnAsOneStream(t *testing.T) {
	sfu := newSFU(t)
	sink := &sequenceSink{}
	room, _, err := sfu.Open(rtc.RoomConfig{ID: "visit-3", Ends: time.Now().Add(time.Minute), Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	family, resident := rtctest.NewClient(t, "family"), rtctest.NewClient(t, "resident")
	family.Join(room, rtc.Family, true)
	resident.Join(room, rtc.Resident, true)
	go family.Publish(ctx)
	go resident.Publish(ctx)
	rtctest.Eventually(t, "media both ways", func() bool { return family.Got("resident") > 50 && resident.Got("family") > 50 })

	family.PC.Close()
	rtctest.ServerEnd{Pipe: family.Pipe}.Close("gone")
	before := sink.count()
	back := rtctest.NewClient(t, "family")
	back.Join(room, rtc.Family, true)
	go back.Publish(ctx)
	rtctest.Eventually(t, "the family's media again", func() bool { return sink.count() > before+100 && resident.Got("family") > 100 })

	sink.mu.Lock()
	defer sink.mu.Unlock()
	for kind, pkts := range sink.packets {
		for i := 1; i < len(pkts); i++ {
			seq, ts := pkts[i].SequenceNumber-pkts[i-1].SequenceNumber, pkts[i].Timestamp-pkts[i-1].Timestamp
			// Forward, by a little: the loopback loses and reorders nothing, and
			// the switch took less than a few seconds.
			if seq == 0 || seq > 50 || ts > 10*90000 {
				t.Fatalf("the family's %s jumps from packet %d to %d (seq %d → %d, timestamp %d → %d)", kind, i-1, i,
					pkts[i-1].SequenceNumber, pkts[i].SequenceNumber, pkts[i-1].Timestamp, pkts[i].Timestamp)
			}
		}
	}
}

// sequenceSink keeps the headers of the family's packets the room forwards.
type sequenceSink struct {
	mu      sync.Mutex
	packets map[webrtc.RTPCodecType][]rtp.Header
}

func (s *sequenceSink) WriteRTP(from rtc.Role, kind webrtc.RTPCodecType, pkt *rtp.Packet) {
	if from != rtc.Family {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.packets == nil {
		s.packets = map[webrtc.RTPCodecType][]rtp.Header{}
	}
	s.packets[kind] = append(s.packets[kind], pkt.Header)
}

func (s *sequenceSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.packets[webrtc.RTPCodecTypeVideo]) + len(s.packets[webrtc.RTPCodecTypeAudio])
}

func (s *sequenceSink) Close() {}
