package rtc

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Role is who a participant is in a visit.
type Role string

// Roles.
const (
	Family   Role = "family"
	Resident Role = "resident"
	Watcher  Role = "watcher" // an officer watching: receives both sides, sends nothing
)

// publishers are the roles that send media.
var publishers = []Role{Family, Resident}

// other is the publisher a publisher sees.
func other(r Role) Role {
	if r == Family {
		return Resident
	}
	return Family
}

// Billing rules of the room's meter.
const (
	// FlowWindow: a side's media flows while its last packet is this recent
	// (audio alone sends 50 packets a second).
	FlowWindow = 2 * time.Second
	// MaxChargedGap is the longest drop still counted as connected time: a drop in
	// which the server saw no media from a side for longer is not charged at all.
	MaxChargedGap = 30 * time.Second
	// tick is how often the meter reads the flows.
	tick = time.Second
	// progressEvery is how often the room reports connected time (OnProgress), so
	// that a crash loses at most this much of what was counted.
	progressEvery = 10 * time.Second
)

// Sink receives every packet a room forwards: the recorder.
type Sink interface {
	// WriteRTP is called on the publisher's forwarding goroutine, so it must not
	// wait. pkt and its payload are only valid during the call (the room reads the
	// next packet into the same memory): a sink that keeps them copies them.
	WriteRTP(from Role, kind webrtc.RTPCodecType, pkt *rtp.Packet)
	// Close is called once when the room ends or is dropped.
	Close()
}

// RoomConfig opens a room.
type RoomConfig struct {
	ID         string    // the visit's
	Ends       time.Time // the slot's end: the room ends then
	Privileged bool      // an attorney's visit: never watched, never recorded
	// Echo sends a family their own media back: the camera check's loopback call
	// through the server, measured like a visit.
	Echo bool
	// BitrateKbps caps each publisher's video (0: no cap).
	BitrateKbps int
	// Connected is the connected time counted before the room opened (the visit's
	// earlier room, on a server that stopped), and Live whether it went live there.
	Connected time.Duration
	Live      bool
	// Sink records the room; nil records nothing (and a privileged room never
	// takes one).
	Sink Sink
	// Hooks, each called on a goroutine of its own: OnLive once, when both sides'
	// media first flow; OnProgress with the connected time so far; OnEnd once, when
	// the room ends (not when it is dropped).
	OnLive     func()
	OnProgress func(connected time.Duration)
	OnEnd      func(End)
	Now        func() time.Time // default time.Now
}

// End is how a room ended.
type End struct {
	By        string // family, resident, staff or system
	Reason    string // hung_up, time_up, or staff's words
	Connected time.Duration
	// Joined tells which sides ever joined; Live whether both sides' media ever
	// flowed together.
	Joined map[Role]bool
	Live   bool
}

// ErrPrivileged is a watcher at a privileged visit: it fails closed.
var ErrPrivileged = errors.New("rtc: a privileged visit is never watched")

// ErrEnded is a join of a room that ended.
var ErrEnded = errors.New("rtc: the visit ended")

// Room is one visit's media.
type Room struct {
	sfu *SFU
	cfg RoomConfig
	// tracks forward each publisher's media to whoever receives it; they exist
	// from the start, so a participant's offer never changes.
	tracks map[Role]map[webrtc.RTPCodecType]*webrtc.TrackLocalStaticRTP
	// lastPacket is each publisher's last packet, in Unix nanoseconds: written per
	// packet, so atomic rather than under mu.
	lastPacket map[Role]*atomic.Int64
	// streams keep each forwarded track one stream across publishers (a side
	// joining again).
	streams map[Role]map[webrtc.RTPCodecType]*stream

	mu        sync.Mutex
	peers     map[*Peer]bool
	publisher map[Role]*Peer
	joined    map[Role]bool
	lastPLI   map[Role]time.Time
	state     string
	live      bool
	flowing   bool
	connected time.Duration
	gapStart  time.Time // when both sides stopped flowing together
	lastTick  time.Time
	over      bool
	end       End

	done chan struct{}
}

func newRoom(s *SFU, cfg RoomConfig) (*Room, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Privileged {
		cfg.Sink = nil // never recorded, whatever the caller passed
	}
	r := &Room{sfu: s, cfg: cfg, tracks: map[Role]map[webrtc.RTPCodecType]*webrtc.TrackLocalStaticRTP{},
		lastPacket: map[Role]*atomic.Int64{}, streams: map[Role]map[webrtc.RTPCodecType]*stream{}, peers: map[*Peer]bool{}, publisher: map[Role]*Peer{}, joined: map[Role]bool{},
		lastPLI: map[Role]time.Time{}, state: StateWaiting, connected: cfg.Connected, live: cfg.Live, done: make(chan struct{})}
	for _, role := range publishers {
		video, err := webrtc.NewTrackLocalStaticRTP(videoCodec(nil), string(role)+"-video", string(role))
		if err != nil {
			return nil, err
		}
		audio, err := webrtc.NewTrackLocalStaticRTP(audioCodec(), string(role)+"-audio", string(role))
		if err != nil {
			return nil, err
		}
		r.tracks[role] = map[webrtc.RTPCodecType]*webrtc.TrackLocalStaticRTP{webrtc.RTPCodecTypeVideo: video, webrtc.RTPCodecTypeAudio: audio}
		r.lastPacket[role] = &atomic.Int64{}
		r.streams[role] = map[webrtc.RTPCodecType]*stream{webrtc.RTPCodecTypeVideo: {clockRate: 90000}, webrtc.RTPCodecTypeAudio: {clockRate: 48000}}
	}
	return r, nil
}

// run keeps the meter and ends the room when the slot is over.
func (r *Room) run() {
	t := time.NewTicker(tick)
	defer t.Stop()
	lastProgress := r.cfg.Now()
	r.mu.Lock()
	r.lastTick = lastProgress
	r.mu.Unlock()
	for {
		select {
		case <-r.done:
			return
		case <-t.C:
		}
		now := r.cfg.Now()
		r.meter(now)
		if !now.Before(r.cfg.Ends) {
			r.End("system", "time_up")
			return
		}
		if now.Sub(lastProgress) >= progressEvery && r.cfg.OnProgress != nil {
			lastProgress = now
			connected := r.Connected()
			go r.cfg.OnProgress(connected)
		}
	}
}

// flows reports whether a publisher's media arrived within FlowWindow of now.
func (r *Room) flows(role Role, now time.Time) bool {
	last := r.lastPacket[role].Load()
	return last != 0 && now.Sub(time.Unix(0, last)) < FlowWindow
}

// meter adds to the connected time: the time both sides' media flowed, and the
// drops between that lasted MaxChargedGap or less.
func (r *Room) meter(now time.Time) {
	both := r.flows(Family, now) && (r.cfg.Echo || r.flows(Resident, now))
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.over {
		return
	}
	dt := now.Sub(r.lastTick)
	r.lastTick = now
	switch {
	case both && r.flowing:
		r.connected += dt
	case both:
		if !r.gapStart.IsZero() && now.Sub(r.gapStart) <= MaxChargedGap {
			r.connected += now.Sub(r.gapStart)
		}
		r.flowing, r.gapStart = true, time.Time{}
		if !r.live {
			r.live = true
			if r.cfg.OnLive != nil {
				go r.cfg.OnLive()
			}
		}
		r.setState(StateConnected)
	case r.flowing:
		r.flowing, r.gapStart = false, now.Add(-dt)
		r.setState(StateReconnecting)
	}
}

// setState tells every participant the room's state, when it changes. r.mu is held.
func (r *Room) setState(state string) {
	if r.state == state {
		return
	}
	r.state = state
	for p := range r.peers {
		p.sendState(r.stateMessage(p.role))
	}
}

// stateMessage is the state as a participant is told it. r.mu is held.
func (r *Room) stateMessage(role Role) Message {
	m := Message{Type: TypeState, State: r.state, EndsAt: r.cfg.Ends.UTC(), Role: role}
	if r.over {
		m.By, m.Reason = r.end.By, r.end.Reason
	}
	return m
}

// Connected is the connected time counted so far.
func (r *Room) Connected() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.connected
}

// State is the room's state.
func (r *Room) State() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state
}

// Done is closed when the room ends or is dropped.
func (r *Room) Done() <-chan struct{} { return r.done }

func (r *Room) ended() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.over
}

// End ends the visit: every participant is told who ended it and why, and
// disconnected; OnEnd gets what the room measured. Ending an ended room does
// nothing.
func (r *Room) End(by, reason string) {
	r.mu.Lock()
	if r.over {
		r.mu.Unlock()
		return
	}
	r.meterLocked()
	r.over = true
	joined := map[Role]bool{}
	for k, v := range r.joined {
		joined[k] = v
	}
	r.end = End{By: by, Reason: reason, Connected: r.connected, Joined: joined, Live: r.live}
	r.state = StateEnded
	peers := r.peerList()
	for _, p := range peers {
		p.sendState(r.stateMessage(p.role))
	}
	end := r.end
	r.mu.Unlock()
	close(r.done)
	for _, p := range peers {
		p.close("ended")
	}
	if r.cfg.Sink != nil {
		r.cfg.Sink.Close()
	}
	r.sfu.forget(r)
	if r.cfg.OnEnd != nil {
		go r.cfg.OnEnd(end)
	}
}

// meterLocked counts the time since the last tick, at the end. r.mu is held.
func (r *Room) meterLocked() {
	if r.flowing {
		r.connected += r.cfg.Now().Sub(r.lastTick)
	}
}

// drop closes the room without ending the visit: its server is stopping.
func (r *Room) drop() {
	r.mu.Lock()
	if r.over {
		r.mu.Unlock()
		return
	}
	r.over = true
	peers := r.peerList()
	r.mu.Unlock()
	close(r.done)
	for _, p := range peers {
		p.close("server stopping")
	}
	if r.cfg.Sink != nil {
		r.cfg.Sink.Close()
	}
}

func (r *Room) peerList() []*Peer {
	out := make([]*Peer, 0, len(r.peers))
	for p := range r.peers {
		out = append(out, p)
	}
	return out
}

// packet forwards a publisher's packet to whoever receives it, and to the
// recorder.
func (r *Room) packet(from Role, kind webrtc.RTPCodecType, pkt *rtp.Packet) {
	now := r.cfg.Now()
	r.lastPacket[from].Store(now.UnixNano())
	r.streams[from][kind].follow(pkt, now)
	if r.cfg.Sink != nil {
		r.cfg.Sink.WriteRTP(from, kind, pkt)
	}
	_ = r.tracks[from][kind].WriteRTP(pkt) // a receiver that failed is dropped by its own peer
}

// keyframe asks a publisher for a picture that decodes on its own (a new
// receiver, a receiver that lost one), at most twice a second.
func (r *Room) keyframe(from Role) {
	r.mu.Lock()
	p := r.publisher[from]
	now := r.cfg.Now()
	if p == nil || now.Sub(r.lastPLI[from]) < 500*time.Millisecond {
		r.mu.Unlock()
		return
	}
	r.lastPLI[from] = now
	r.mu.Unlock()
	p.requestKeyframe()
}

// add places a participant in the room; a publisher replaces the one before it
// (a rejoin after a drop, another device).
func (r *Room) add(p *Peer) (replaced *Peer, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.over {
		return nil, ErrEnded
	}
	r.peers[p] = true
	if p.role != Watcher {
		replaced = r.publisher[p.role]
		r.publisher[p.role] = p
		r.joined[p.role] = true
	}
	return replaced, nil
}

// remove takes a participant out.
func (r *Room) remove(p *Peer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.peers, p)
	if r.publisher[p.role] == p {
		delete(r.publisher, p.role)
	}
}

// Participants counts who is in the room, by role.
func (r *Room) Participants() map[Role]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[Role]int{}
	for p := range r.peers {
		out[p.role]++
	}
	return out
}

// stream keeps the packets a room forwards on one track numbered as one stream.
// A side that joins again (a new connection, another device) sends with a new
// SSRC, sequence numbers and timestamps of its own; forwarded as they are, a
// browser that received the earlier ones takes them for old or far-off packets and
// drops them (its video stops while the server sees media flow). So the new
// source's numbers are shifted to go on from the last ones forwarded.
type stream struct {
	clockRate uint32

	mu       sync.Mutex
	ssrc     uint32 // the source forwarded now
	started  bool
	seqShift uint16
	tsShift  uint32
	lastSeq  uint16 // the newest packet forwarded, as forwarded
	lastTS   uint32
	lastAt   time.Time
}

// follow renumbers pkt as the stream's next packet when its source is new.
func (s *stream) follow(pkt *rtp.Packet, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.started:
		s.started, s.ssrc = true, pkt.SSRC
	case pkt.SSRC != s.ssrc:
		s.ssrc = pkt.SSRC
		s.seqShift = s.lastSeq + 1 - pkt.SequenceNumber
		// The timestamp goes on by the time that passed, at least one tick.
		gap := uint32(max(now.Sub(s.lastAt).Seconds()*float64(s.clockRate), 1))
		s.tsShift = s.lastTS + gap - pkt.Timestamp
	}
	pkt.SequenceNumber += s.seqShift
	pkt.Timestamp += s.tsShift
	// Keep the newest (a late packet of a reordered pair is not the last).
	if d := pkt.SequenceNumber - s.lastSeq; s.lastAt.IsZero() || d != 0 && d < 0x8000 {
		s.lastSeq, s.lastTS, s.lastAt = pkt.SequenceNumber, pkt.Timestamp, now
	}
}
