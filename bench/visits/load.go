package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// The synthetic media of one publisher: VP8 at 1.5 Mbit/s, 30 frames a second of
// 6,250 bytes each, sent as bursts of 6 packets of 1,042 bytes (the last with the
// marker), and Opus, 50 packets a second of 100 bytes.
const (
	frameRate      = 30
	frameBytes     = 1_500_000 / 8 / frameRate
	framePackets   = 6
	videoPayload   = frameBytes / framePackets
	audioRate      = 50
	audioPayload   = 100
	packetsPerSide = frameRate*framePackets + audioRate // 230 a second
)

// Every packet's payload starts with a VP8 payload descriptor byte, then the
// sender's clock (Unix nanoseconds) when it was written, so the receiver measures
// the time through the server.
const stampAt = 1

// load is the load generator: Pion clients in this process, with counters of what
// they sent and received with a send time inside the measured window.
type load struct {
	api  *webrtc.API
	addr string
	ctx  context.Context

	winStart, winEnd atomic.Int64 // Unix nanoseconds; a packet stamped inside counts
	sent, received   atomic.Int64
	latency          histogram

	mu      sync.Mutex
	clients []*client
}

func newLoad(ctx context.Context, addr string) (*load, error) {
	api, err := loopbackAPI()
	if err != nil {
		return nil, err
	}
	l := &load{api: api, addr: addr, ctx: ctx}
	l.winStart.Store(1<<63 - 1)
	return l, nil
}

// client is one participant: a Pion peer connection answering the server's offers.
type client struct {
	l            *load
	pc           *webrtc.PeerConnection
	ws           *websocket.Conn
	wmu          sync.Mutex
	answered     bool     // under wmu
	pending      []signal // our candidates waiting for the answer, under wmu
	connected    chan struct{}
	video, audio *webrtc.TrackLocalStaticRTP // nil for a receiver only
}

// join connects a participant; publish adds a camera and a microphone after the
// offer, as a browser does.
func (l *load) join(visit, role string, publish bool) (*client, error) {
	pc, err := l.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(l.ctx, 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+l.addr+"/join?visit="+visit+"&role="+role, nil)
	if err != nil {
		pc.Close()
		return nil, err
	}
	ws.SetReadLimit(1 << 20)
	c := &client{l: l, pc: pc, ws: ws, connected: make(chan struct{})}
	if publish {
		c.video, _ = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", visit+role)
		c.audio, _ = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", visit+role)
	}
	var once sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(c.connected) })
		}
	})
	pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { l.receive(t) })
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand != nil {
			init := cand.ToJSON()
			c.sendCandidate(signal{Type: "candidate", Candidate: &init})
		}
	})
	l.mu.Lock()
	l.clients = append(l.clients, c)
	l.mu.Unlock()
	go c.signalling(publish)
	select {
	case <-c.connected:
		return c, nil
	case <-time.After(20 * time.Second):
		return nil, fmt.Errorf("%s %s: not connected after 20 s", visit, role)
	}
}

// sendCandidate sends a candidate of ours once our answer is sent: a candidate
// before the answer would be refused.
func (c *client) sendCandidate(m signal) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !c.answered {
		c.pending = append(c.pending, m)
		return
	}
	_ = wsjson.Write(context.Background(), c.ws, m)
}

func (c *client) signalling(publish bool) {
	added := false
	var early []webrtc.ICECandidateInit
	for {
		var m signal
		if err := wsjson.Read(context.Background(), c.ws, &m); err != nil {
			return
		}
		switch m.Type {
		case "offer":
			if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: m.SDP}); err != nil {
				return
			}
			if publish && !added {
				added = true
				for _, t := range []*webrtc.TrackLocalStaticRTP{c.video, c.audio} {
					s, err := c.pc.AddTrack(t)
					if err != nil {
						return
					}
					go drainRTCP(s)
				}
			}
			answer, err := c.pc.CreateAnswer(nil)
			if err == nil {
				err = c.pc.SetLocalDescription(answer)
			}
			if err != nil {
				return
			}
			c.wmu.Lock()
			for _, m := range append([]signal{{Type: "answer", SDP: answer.SDP}}, c.pending...) {
				_ = wsjson.Write(context.Background(), c.ws, m)
			}
			c.answered, c.pending = true, nil
			c.wmu.Unlock()
			for _, cand := range early {
				_ = c.pc.AddICECandidate(cand)
			}
			early = nil
		case "candidate":
			if m.Candidate == nil {
				continue
			}
			if c.pc.RemoteDescription() == nil {
				early = append(early, *m.Candidate) // sent before the offer reached us
				continue
			}
			_ = c.pc.AddICECandidate(*m.Candidate)
		}
	}
}

// publish sends the synthetic media until the load stops, starting at a random
// point of the first frame so that publishers do not send in step.
func (c *client) publish() {
	l := c.l
	buf := make([]byte, videoPayload)
	var vseq, aseq uint16
	var frames, audios uint32
	now := time.Now()
	nextVideo := now.Add(rand.N(time.Second / frameRate))
	nextAudio := now.Add(rand.N(time.Second / audioRate))
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	write := func(t *webrtc.TrackLocalStaticRTP, seq uint16, ts uint32, size int, first, marker bool) {
		buf[0] = 0
		if first {
			buf[0] = 0x10 // VP8: start of a partition
		}
		stamp := time.Now().UnixNano()
		binary.LittleEndian.PutUint64(buf[stampAt:], uint64(stamp))
		_ = t.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: ts, Marker: marker}, Payload: buf[:size]})
		if stamp >= l.winStart.Load() && stamp < l.winEnd.Load() {
			l.sent.Add(1)
		}
	}
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		// A generator that fell behind (a starved process) catches up at most
		// 100 ms; what it skips is not sent, so not counted as lost.
		if now.Sub(nextAudio) > 100*time.Millisecond {
			nextAudio = now
		}
		if now.Sub(nextVideo) > 100*time.Millisecond {
			nextVideo = now
		}
		for !nextAudio.After(now) {
			aseq++
			audios++
			write(c.audio, aseq, audios*960, audioPayload, true, true)
			nextAudio = nextAudio.Add(time.Second / audioRate)
		}
		for !nextVideo.After(now) {
			frames++
			for i := range framePackets {
				vseq++
				write(c.video, vseq, frames*3000, videoPayload, i == 0, i == framePackets-1)
			}
			nextVideo = nextVideo.Add(time.Second / frameRate)
		}
	}
}

// receive reads a forwarded track, counting the packets stamped inside the window
// and the time they took from the sender's write to here.
func (l *load) receive(t *webrtc.TrackRemote) {
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		if pkt.Unmarshal(buf[:n]) != nil || len(pkt.Payload) < stampAt+8 {
			continue
		}
		stamp := int64(binary.LittleEndian.Uint64(pkt.Payload[stampAt:]))
		if stamp >= l.winStart.Load() && stamp < l.winEnd.Load() {
			l.received.Add(1)
			l.latency.add(time.Now().UnixNano() - stamp)
		}
	}
}

func (l *load) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.clients {
		_ = c.pc.Close()
		_ = c.ws.CloseNow()
	}
	l.clients = nil
}

// histogram counts latencies in 20 µs steps up to 1 s.
type histogram struct{ b [50001]atomic.Int64 }

const histStep = 20 * time.Microsecond

func (h *histogram) add(ns int64) {
	i := ns / int64(histStep)
	i = max(0, min(i, int64(len(h.b)-1)))
	h.b[i].Add(1)
}

func (h *histogram) reset() {
	for i := range h.b {
		h.b[i].Store(0)
	}
}

// quantile is the upper edge of the step holding quantile q.
func (h *histogram) quantile(q float64) time.Duration {
	var total int64
	for i := range h.b {
		total += h.b[i].Load()
	}
	if total == 0 {
		return 0
	}
	want := int64(q * float64(total))
	var seen int64
	for i := range h.b {
		seen += h.b[i].Load()
		if seen > want {
			return time.Duration(i+1) * histStep
		}
	}
	return time.Duration(len(h.b)) * histStep
}
