package rtc_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/kinlink/kinlink/internal/visits/rtc"
)

// pipe is an in-memory signalling channel: the server's end and the client's.
type pipe struct {
	toServer, toClient chan rtc.Message
	once               sync.Once
	closed             chan struct{}
}

func newPipe() *pipe {
	return &pipe{toServer: make(chan rtc.Message, 64), toClient: make(chan rtc.Message, 64), closed: make(chan struct{})}
}

// serverEnd is the Conn the room reads and writes.
type serverEnd struct{ *pipe }

func (s serverEnd) Read(ctx context.Context) (rtc.Message, error) {
	select {
	case m := <-s.toServer:
		return m, nil
	case <-s.closed:
		return rtc.Message{}, io.EOF
	case <-ctx.Done():
		return rtc.Message{}, ctx.Err()
	}
}

func (s serverEnd) Write(ctx context.Context, m rtc.Message) error {
	select {
	case s.toClient <- m:
		return nil
	case <-s.closed:
		return io.ErrClosedPipe
	}
}

func (s serverEnd) Close(string) error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

// client is a participant made of Pion: it answers the server's offers, publishes
// synthetic VP8 and Opus packets that carry its name, and counts what it receives
// by the name in them.
type client struct {
	t      *testing.T
	name   string
	pc     *webrtc.PeerConnection
	pipe   *pipe
	video  *webrtc.TrackLocalStaticRTP
	audio  *webrtc.TrackLocalStaticRTP
	joined chan error

	mu       sync.Mutex
	received map[string]int // by the sender's name in the payload
	states   []rtc.Message
	tracks   atomic.Int32
}

func newClient(t *testing.T, name string) *client {
	t.Helper()
	media := &webrtc.MediaEngine{}
	if err := media.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	registry := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(media, registry); err != nil {
		t.Fatal(err)
	}
	settings := webrtc.SettingEngine{}
	settings.SetIncludeLoopbackCandidate(true)
	settings.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	settings.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	api := webrtc.NewAPI(webrtc.WithMediaEngine(media), webrtc.WithInterceptorRegistry(registry), webrtc.WithSettingEngine(settings))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, name: name, pc: pc, pipe: newPipe(), received: map[string]int{}, joined: make(chan error, 1)}
	c.video, _ = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", name)
	c.audio, _ = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", name)
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		c.tracks.Add(1)
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			from, _, _ := bytes.Cut(pkt.Payload[1:], []byte{0})
			c.mu.Lock()
			c.received[string(from)]++
			c.mu.Unlock()
		}
	})
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand != nil {
			init := cand.ToJSON()
			c.pipe.toServer <- rtc.Message{Type: rtc.TypeCandidate, Candidate: &init}
		}
	})
	t.Cleanup(func() { pc.Close() })
	return c
}

// join enters the room as role, answering offers as a browser does: it adds its
// camera and microphone after taking the offer, unless send is false.
func (c *client) join(r *rtc.Room, role rtc.Role, send bool) {
	go func() { c.joined <- r.Join(context.Background(), role, serverEnd{c.pipe}) }()
	go func() {
		added := false
		for {
			var m rtc.Message
			select {
			case m = <-c.pipe.toClient:
			case <-c.pipe.closed:
				return
			}
			switch m.Type {
			case rtc.TypeOffer:
				if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: m.SDP}); err != nil {
					c.t.Errorf("%s: offer: %v", c.name, err)
					return
				}
				if send && !added {
					added = true
					if _, err := c.pc.AddTrack(c.video); err != nil {
						c.t.Errorf("%s: %v", c.name, err)
					}
					if _, err := c.pc.AddTrack(c.audio); err != nil {
						c.t.Errorf("%s: %v", c.name, err)
					}
				}
				answer, err := c.pc.CreateAnswer(nil)
				if err == nil {
					err = c.pc.SetLocalDescription(answer)
				}
				if err != nil {
					c.t.Errorf("%s: answer: %v", c.name, err)
					return
				}
				c.pipe.toServer <- rtc.Message{Type: rtc.TypeAnswer, SDP: answer.SDP}
			case rtc.TypeCandidate:
				_ = c.pc.AddICECandidate(*m.Candidate)
			case rtc.TypeState:
				c.mu.Lock()
				c.states = append(c.states, m)
				c.mu.Unlock()
			}
		}
	}()
}

// publish sends media until ctx ends: 30 video and 50 audio packets a second.
func (c *client) publish(ctx context.Context) {
	var seq uint16
	payload := append([]byte{0x10}, []byte(c.name+"\x00")...)
	payload = append(payload, make([]byte, 600)...)
	tk := time.NewTicker(20 * time.Millisecond)
	defer tk.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		seq++
		_ = c.audio.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(i * 960)}, Payload: payload[:40]})
		if i%3 != 2 {
			_ = c.video.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(i * 1800), Marker: true}, Payload: payload})
		}
	}
}

func (c *client) got(from string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.received[from]
}

func (c *client) lastState() rtc.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.states) == 0 {
		return rtc.Message{}
	}
	return c.states[len(c.states)-1]
}

// eventually waits up to 20 seconds for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

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

	family, resident, officer := newClient(t, "family"), newClient(t, "resident"), newClient(t, "officer")
	family.join(room, rtc.Family, true)
	eventually(t, "the family waiting", func() bool { return family.lastState().State == rtc.StateWaiting })
	go family.publish(ctx)
	resident.join(room, rtc.Resident, true)
	go resident.publish(ctx)
	eventually(t, "media both ways", func() bool { return family.got("resident") > 50 && resident.got("family") > 50 })
	eventually(t, "connected", func() bool {
		return live.Load() && family.lastState().State == rtc.StateConnected && resident.lastState().State == rtc.StateConnected
	})

	// The officer watches: both sides reach them; what they try to send reaches no one.
	officer.join(room, rtc.Watcher, true)
	go officer.publish(ctx)
	eventually(t, "the watcher receiving both sides", func() bool { return officer.got("family") > 50 && officer.got("resident") > 50 })
	time.Sleep(time.Second)
	if family.got("officer") != 0 || resident.got("officer") != 0 || family.got("family") != 0 {
		t.Fatalf("the watcher was heard: family got %d, resident got %d", family.got("officer"), resident.got("officer"))
	}
	if n := room.Participants(); n[rtc.Watcher] != 1 || n[rtc.Family] != 1 || n[rtc.Resident] != 1 {
		t.Fatalf("participants %v", n)
	}

	// The resident's connection drops: the family sees them reconnecting; they come
	// back on a new connection and the media flows again.
	resident.pc.Close()
	serverEnd{resident.pipe}.Close("gone")
	eventually(t, "reconnecting", func() bool { return family.lastState().State == rtc.StateReconnecting })
	back := newClient(t, "resident")
	back.join(room, rtc.Resident, true)
	go back.publish(ctx)
	eventually(t, "connected again", func() bool { return back.got("family") > 50 && family.lastState().State == rtc.StateConnected })

	// The family hangs up: everyone is told who ended it.
	family.pipe.toServer <- rtc.Message{Type: rtc.TypeEnd}
	var e rtc.End
	select {
	case e = <-ends:
	case <-time.After(10 * time.Second):
		t.Fatal("the room did not end")
	}
	if e.By != "family" || e.Reason != "hung_up" || !e.Live || !e.Joined[rtc.Family] || !e.Joined[rtc.Resident] || e.Connected < 2*time.Second {
		t.Fatalf("end %+v", e)
	}
	eventually(t, "everyone told", func() bool {
		for _, c := range []*client{back, officer} {
			if s := c.lastState(); s.State != rtc.StateEnded || s.By != "family" {
				return false
			}
		}
		return true
	})
	if _, ok := sfu.Room("visit-1"); ok {
		t.Fatal("the room is still open")
	}
	if err := <-family.joined; err != nil {
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
	if err := room.Join(context.Background(), rtc.Watcher, serverEnd{newPipe()}); !errors.Is(err, rtc.ErrPrivileged) {
		t.Fatalf("a watcher: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	family, resident := newClient(t, "family"), newClient(t, "resident")
	family.join(room, rtc.Family, true)
	resident.join(room, rtc.Resident, true)
	go family.publish(ctx)
	go resident.publish(ctx)
	eventually(t, "media both ways", func() bool { return family.got("resident") > 50 && resident.got("family") > 50 })
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
	family := newClient(t, "family")
	family.join(room, rtc.Family, true)
	select {
	case e := <-ends:
		if e.By != "system" || e.Reason != "time_up" || e.Live || !e.Joined[rtc.Family] || e.Joined[rtc.Resident] {
			t.Fatalf("end %+v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the slot's end did not end the room")
	}
	eventually(t, "the family told", func() bool { return family.lastState().State == rtc.StateEnded })
	if err := room.Join(context.Background(), rtc.Family, serverEnd{newPipe()}); !errors.Is(err, rtc.ErrEnded) {
		t.Fatalf("joining an ended room: %v", err)
	}
}

type countingSink struct{ packets atomic.Int64 }

func (s *countingSink) WriteRTP(rtc.Role, webrtc.RTPCodecType, *rtp.Packet) { s.packets.Add(1) }
func (s *countingSink) Close()                                              {}
