// Package rtctest has participants of video visits made of Pion, for tests and
// benchmarks: they take the server's offers over an in-memory signalling pipe,
// publish synthetic VP8 and Opus packets that carry their name, and count what
// they receive by the name in it.
package rtctest

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/kinlink/kinlink/internal/visits/rtc"
)

// Pipe is an in-memory signalling channel: the server's end and the client's.
type Pipe struct {
	ToServer, ToClient chan rtc.Message
	once               sync.Once
	closed             chan struct{}
}

func NewPipe() *Pipe {
	return &Pipe{ToServer: make(chan rtc.Message, 64), ToClient: make(chan rtc.Message, 64), closed: make(chan struct{})}
}

// ServerEnd is the Conn the room reads and writes.
type ServerEnd struct{ *Pipe }

func (s ServerEnd) Read(ctx context.Context) (rtc.Message, error) {
	select {
	case m := <-s.ToServer:
		return m, nil
	case <-s.closed:
		return rtc.Message{}, io.EOF
	case <-ctx.Done():
		return rtc.Message{}, ctx.Err()
	}
}

func (s ServerEnd) Write(ctx context.Context, m rtc.Message) error {
	select {
	case s.ToClient <- m:
		return nil
	case <-s.closed:
		return io.ErrClosedPipe
	}
}

func (s ServerEnd) Close(string) error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

// Client is a participant made of Pion: it answers the server's offers, publishes
// synthetic VP8 and Opus packets that carry its name, and counts what it receives
// by the name in them.
type Client struct {
	t      *testing.T
	name   string
	PC     *webrtc.PeerConnection
	Pipe   *Pipe
	video  *webrtc.TrackLocalStaticRTP
	audio  *webrtc.TrackLocalStaticRTP
	Joined chan error

	mu       sync.Mutex
	conn     rtc.Conn
	config   []rtc.Message
	offers   []string
	received map[string]int // by the sender's name in the payload
	states   []rtc.Message
	tracks   atomic.Int32
}

func NewClient(t *testing.T, name string) *Client {
	t.Helper()
	return NewClientWith(t, name, webrtc.Configuration{})
}

// NewClientWith is NewClient with a configuration of its own (ICE servers, a
// relay-only policy).
func NewClientWith(t *testing.T, name string, config webrtc.Configuration) *Client {
	t.Helper()
	media := &webrtc.MediaEngine{}
	if err := media.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	registry := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(media, registry); err != nil {
		t.Fatal(err)
	}
	settings := webrtc.SettingEngine{LoggerFactory: quiet{}}
	settings.SetIncludeLoopbackCandidate(true)
	settings.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	settings.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	api := webrtc.NewAPI(webrtc.WithMediaEngine(media), webrtc.WithInterceptorRegistry(registry), webrtc.WithSettingEngine(settings))
	pc, err := api.NewPeerConnection(config)
	if err != nil {
		t.Fatal(err)
	}
	c := &Client{t: t, name: name, PC: pc, Pipe: NewPipe(), received: map[string]int{}, Joined: make(chan error, 1)}
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
			c.send(rtc.Message{Type: rtc.TypeCandidate, Candidate: &init})
		}
	})
	t.Cleanup(func() { pc.Close() })
	return c
}

// Join enters the room as role, answering offers as a browser does: it adds its
// camera and microphone after taking the offer, unless send is false.
func (c *Client) Join(r *rtc.Room, role rtc.Role, send bool) {
	go func() { c.Joined <- r.Join(context.Background(), role, ServerEnd{c.Pipe}) }()
	c.Connect(clientEnd{c.Pipe}, send)
}

// Connect answers the server's offers on conn (a WebSocket to a real server), as
// Join does on the pipe.
func (c *Client) Connect(conn rtc.Conn, send bool) {
	c.mu.Lock()
	c.conn = conn
	c.mu.Unlock()
	go func() {
		added := false
		for {
			m, err := conn.Read(context.Background())
			if err != nil {
				return
			}
			switch m.Type {
			case rtc.TypeConfig:
				c.mu.Lock()
				c.config = append(c.config, m)
				c.mu.Unlock()
			case rtc.TypeOffer:
				c.mu.Lock()
				c.offers = append(c.offers, m.SDP)
				c.mu.Unlock()
				if err := c.PC.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: m.SDP}); err != nil {
					c.t.Errorf("%s: offer: %v", c.name, err)
					return
				}
				if send && !added {
					added = true
					if _, err := c.PC.AddTrack(c.video); err != nil {
						c.t.Errorf("%s: %v", c.name, err)
					}
					if _, err := c.PC.AddTrack(c.audio); err != nil {
						c.t.Errorf("%s: %v", c.name, err)
					}
				}
				answer, err := c.PC.CreateAnswer(nil)
				if err == nil {
					err = c.PC.SetLocalDescription(answer)
				}
				if err != nil {
					c.t.Errorf("%s: answer: %v", c.name, err)
					return
				}
				c.send(rtc.Message{Type: rtc.TypeAnswer, SDP: answer.SDP})
			case rtc.TypeCandidate:
				_ = c.PC.AddICECandidate(*m.Candidate)
			case rtc.TypeState:
				c.mu.Lock()
				c.states = append(c.states, m)
				c.mu.Unlock()
			}
		}
	}()
}

// Send sends a message to the server (an end, a restart).
func (c *Client) Send(m rtc.Message) { c.send(m) }

func (c *Client) send(m rtc.Message) {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		_ = conn.Write(context.Background(), m)
	}
}

// Offers are the offers the server sent, as SDP.
func (c *Client) Offers() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.offers...)
}

// Config is the config messages the server sent (its ICE servers).
func (c *Client) Config() []rtc.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]rtc.Message(nil), c.config...)
}

// clientEnd is the client's side of a pipe.
type clientEnd struct{ *Pipe }

func (e clientEnd) Read(ctx context.Context) (rtc.Message, error) {
	select {
	case m := <-e.ToClient:
		return m, nil
	case <-e.closed:
		return rtc.Message{}, io.EOF
	case <-ctx.Done():
		return rtc.Message{}, ctx.Err()
	}
}

func (e clientEnd) Write(_ context.Context, m rtc.Message) error {
	select {
	case e.ToServer <- m:
		return nil
	case <-e.closed:
		return io.ErrClosedPipe
	}
}

func (e clientEnd) Close(string) error { return nil }

// Publish sends media until ctx ends: 30 video and 50 audio packets a second.
func (c *Client) Publish(ctx context.Context) {
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

func (c *Client) Got(from string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.received[from]
}

func (c *Client) LastState() rtc.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.states) == 0 {
		return rtc.Message{}
	}
	return c.states[len(c.states)-1]
}

// Eventually waits up to 20 seconds for cond.
func Eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Got counts what the client received from a sender; LastState is the last state
// the server told it.

// quiet keeps Pion's logs (a closed socket at every hang-up) out of test output.
type quiet struct{}

func (quiet) NewLogger(string) logging.LeveledLogger { return quietLogger{} }

type quietLogger struct{}

func (quietLogger) Trace(string)          {}
func (quietLogger) Tracef(string, ...any) {}
func (quietLogger) Debug(string)          {}
func (quietLogger) Debugf(string, ...any) {}
func (quietLogger) Info(string)           {}
func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Warn(string)           {}
func (quietLogger) Warnf(string, ...any)  {}
func (quietLogger) Error(string)          {}
func (quietLogger) Errorf(string, ...any) {}

// Closed is closed when the server's end closes the pipe.
func (p *Pipe) Closed() <-chan struct{} { return p.closed }
