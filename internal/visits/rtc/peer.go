package rtc

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Peer is one participant's connection to a room.
type Peer struct {
	room *Room
	role Role
	pc   *webrtc.PeerConnection
	conn Conn

	out       chan Message // to the participant, in order, by one writer
	closeOnce sync.Once
	closed    chan struct{}
	wrote     chan struct{} // closed when the writer is done, the connection closed
	reason    string        // why it was closed, set before closed is

	mu     sync.Mutex
	remote map[webrtc.RTPCodecType]*webrtc.TrackRemote // what it publishes
}

// Join runs a participant's signalling on conn until the participant leaves, the
// connection breaks, ctx ends or the room ends. A publisher joining again (after
// a drop, from another device) replaces its earlier connection. A watcher is
// refused at a privileged visit.
func (r *Room) Join(ctx context.Context, role Role, conn Conn) error {
	switch role {
	case Family, Resident:
	case Watcher:
		if r.cfg.Privileged || r.cfg.Echo {
			return ErrPrivileged
		}
	default:
		return fmt.Errorf("rtc: no such role %q", role)
	}
	pc, err := r.sfu.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return fmt.Errorf("rtc: peer: %w", err)
	}
	p := &Peer{room: r, role: role, pc: pc, conn: conn, out: make(chan Message, 256), closed: make(chan struct{}), wrote: make(chan struct{}),
		remote: map[webrtc.RTPCodecType]*webrtc.TrackRemote{}}
	go p.write(ctx) // from now on, the writer closes conn when the peer closes
	defer p.close("left")
	if err := p.setUp(); err != nil {
		return err
	}
	replaced, err := r.add(p)
	if err != nil {
		return err
	}
	defer r.remove(p)
	if replaced != nil {
		replaced.close("joined again elsewhere")
	}
	if err := p.offer(false); err != nil {
		return err
	}
	r.mu.Lock()
	p.sendState(r.stateMessage(role))
	r.mu.Unlock()
	return p.read(ctx)
}

// setUp adds the transceivers: a publisher's two to publish on, first, then
// whatever it receives (the other side; a watcher both sides).
func (p *Peer) setUp() error {
	r := p.room
	var receives []Role
	if p.role == Watcher {
		receives = publishers
	} else {
		for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
			if _, err := p.pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
				return err
			}
		}
		receives = []Role{other(p.role)}
		if r.cfg.Echo {
			receives = []Role{p.role}
		}
	}
	for _, from := range receives {
		for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
			t, err := p.pc.AddTransceiverFromTrack(r.tracks[from][kind], webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
			if err != nil {
				return err
			}
			go p.readRTCP(t.Sender(), from)
		}
	}
	p.pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if p.role == Watcher {
			return // offered nothing to send on; whatever arrives goes nowhere
		}
		p.mu.Lock()
		p.remote[t.Kind()] = t
		p.mu.Unlock()
		if t.Kind() == webrtc.RTPCodecTypeVideo {
			go p.room.keyframe(p.role)
		}
		p.forward(t)
	})
	p.pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			return
		}
		init := c.ToJSON()
		p.send(Message{Type: TypeCandidate, Candidate: &init})
	})
	p.pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			// A receiver that just connected needs a picture that decodes on its own.
			for _, from := range receives {
				r.keyframe(from)
			}
		}
	})
	return nil
}

// forward reads a published track into the room until it ends. It reads every
// packet into the same buffer and packet (TrackRemote.ReadRTP allocates both for
// each packet, 230 times a second per side): the room's writes copy what they
// keep, and a Sink is told the packet is only valid during its call.
func (p *Peer) forward(t *webrtc.TrackRemote) {
	kind := t.Kind()
	buf := make([]byte, receiveMTU)
	var pkt rtp.Packet
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		if pkt.Unmarshal(buf[:n]) != nil {
			continue
		}
		p.room.packet(p.role, kind, &pkt)
	}
}

// receiveMTU is the buffer ReadRTP would make: Pion's default receive MTU (the
// SFU does not change it), so a packet too long for it ends forwarding as before.
const receiveMTU = 1500

// readRTCP reads what a receiver reports on a forwarded track (the interceptors
// need it read) and passes its requests for a keyframe to the publisher.
func (p *Peer) readRTCP(s *webrtc.RTPSender, from Role) {
	for {
		pkts, _, err := s.ReadRTCP()
		if err != nil {
			return
		}
		for _, pkt := range pkts {
			switch pkt.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				p.room.keyframe(from)
			}
		}
	}
}

// requestKeyframe asks this publisher's camera for a keyframe.
func (p *Peer) requestKeyframe() {
	p.mu.Lock()
	t := p.remote[webrtc.RTPCodecTypeVideo]
	p.mu.Unlock()
	if t == nil {
		return
	}
	_ = p.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(t.SSRC())}})
}

// offer sends the participant an offer (with an ICE restart, after a network
// change), its video capped at the room's bitrate.
func (p *Peer) offer(restart bool) error {
	offer, err := p.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: restart})
	if err != nil {
		return fmt.Errorf("rtc: offer: %w", err)
	}
	if err := p.pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("rtc: offer: %w", err)
	}
	p.send(Message{Type: TypeOffer, SDP: capVideo(offer.SDP, p.room.cfg.BitrateKbps)})
	return nil
}

// capVideo writes a bandwidth line into each video section of an offer: the
// answerer sends that video at no more than kbps (RFC 3556 b=AS, RFC 3890 b=TIAS).
func capVideo(sdp string, kbps int) string {
	if kbps <= 0 {
		return sdp
	}
	lines := strings.Split(sdp, "\r\n")
	out := make([]string, 0, len(lines)+8)
	video := false
	for _, l := range lines {
		if strings.HasPrefix(l, "m=") {
			video = strings.HasPrefix(l, "m=video")
		}
		if video && strings.HasPrefix(l, "b=") {
			continue // ours replaces any
		}
		out = append(out, l)
		if video && strings.HasPrefix(l, "c=") {
			out = append(out, "b=AS:"+strconv.Itoa(kbps), "b=TIAS:"+strconv.Itoa(kbps*1000))
		}
	}
	return strings.Join(out, "\r\n")
}

// read handles what the participant sends.
func (p *Peer) read(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-p.closed:
		case <-p.room.done:
		case <-ctx.Done():
		}
		// The writer says the last words and closes the connection with its
		// reason ("ended", "joined again elsewhere"), which ends the read.
		// Cancelling the read first would cut a WebSocket before the reason is
		// said: the participant would see a dropped connection.
		select {
		case <-p.wrote:
		case <-ctx.Done():
		case <-time.After(15 * time.Second):
		}
		cancel()
	}()
	for {
		m, err := p.conn.Read(ctx)
		if err != nil {
			select {
			case <-p.room.done:
				return nil
			case <-p.closed:
				return nil
			default:
			}
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("rtc: signalling: %w", err)
		}
		switch m.Type {
		case TypeAnswer:
			err = p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.SDP})
		case TypeCandidate:
			if m.Candidate != nil {
				err = p.pc.AddICECandidate(*m.Candidate)
			}
		case TypeRestart:
			err = p.offer(true)
		case TypeEnd:
			if p.role != Watcher { // an officer ends a visit with a reason, through the portal
				p.room.End(string(p.role), "hung_up")
				return nil
			}
		}
		if err != nil {
			p.send(Message{Type: TypeError, Reason: err.Error()})
		}
	}
}

// send queues a message for the participant; one too many (a participant that
// stopped reading) closes its connection.
func (p *Peer) send(m Message) {
	select {
	case <-p.closed:
	case p.out <- m:
	default:
		go p.close("not reading")
	}
}

// sendState is send for a state message.
func (p *Peer) sendState(m Message) { p.send(m) }

// write sends the queued messages in order.
func (p *Peer) write(ctx context.Context) {
	defer close(p.wrote)
	ctx = context.WithoutCancel(ctx)
	for {
		select {
		case m := <-p.out:
			if err := p.conn.Write(ctx, m); err != nil {
				go p.close("write failed")
				return
			}
		case <-p.closed:
			// Say the last words queued (the end, with who and why) before closing.
			for len(p.out) > 0 {
				if p.conn.Write(ctx, <-p.out) != nil {
					break
				}
			}
			_ = p.conn.Close(p.reason)
			return
		}
	}
}

// close disconnects the participant; the writer says what is queued, then
// closes the connection with reason.
func (p *Peer) close(reason string) {
	p.closeOnce.Do(func() {
		p.reason = reason
		close(p.closed)
		_ = p.pc.Close()
	})
}
