// Package rtc is the media side of video visits: an SFU embedded in the server, in
// the shape of Galène. Each visit is a Room; the family and the resident publish a
// camera and a microphone, and every other participant — the other side, an
// officer watching, the recorder — receives them through forwarding tracks the room
// makes when it opens. So a participant needs one offer when it joins and none
// when the other side comes or goes: its tracks are there and start flowing.
//
// The server always offers; the participant answers. A publisher's offer puts the
// two transceivers it receives on (video, audio) first, then the other side's two
// tracks, so a client that adds its camera and microphone after taking the offer
// (addTrack reuses those transceivers) publishes, and a watcher, offered no
// transceiver to send on, cannot.
//
// Rooms know nothing of bookings or money: the visits package opens them with the
// slot's end and hooks for going live, progress and the end, and decides from what
// the room measured (seconds both sides' media flowed) what is charged.
package rtc

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/webrtc/v4"
)

// Config is how the SFU reaches the network.
type Config struct {
	// UDP is the one address media arrives on (ICE UDP mux), e.g. ":50000".
	UDP string
	// PublicIPs are announced instead of the host's addresses when the server is
	// behind a 1:1 NAT.
	PublicIPs []string
	// Loopback offers 127.0.0.1 candidates too: for tests and a server tried on one
	// machine.
	Loopback bool
	// ICEServers are given to clients (STUN, TURN).
	ICEServers []webrtc.ICEServer
}

// SFU holds the rooms of the visits live on this server.
type SFU struct {
	api  *webrtc.API
	conn net.PacketConn
	log  *slog.Logger

	mu    sync.Mutex
	rooms map[string]*Room
}

// New starts the SFU: it listens on cfg.UDP for every participant's media.
func New(cfg Config, log *slog.Logger) (*SFU, error) {
	conn, err := net.ListenPacket("udp", cfg.UDP)
	if err != nil {
		return nil, fmt.Errorf("rtc: media port %s: %w", cfg.UDP, err)
	}
	if u, ok := conn.(*net.UDPConn); ok {
		_ = u.SetReadBuffer(udpReadBuffer) // best effort: the kernel may cap it
	}
	api, err := newAPI(cfg, conn, pionLogs{log})
	if err != nil {
		conn.Close()
		return nil, err
	}
	return &SFU{api: api, conn: conn, log: log, rooms: map[string]*Room{}}, nil
}

// udpReadBuffer is asked for the media socket's receive buffer. Every visit's
// media arrives on that one socket (about 460 packets a second a visit); Linux's
// default buffer, about 200 KB or 190 video packets, fills in tens of milliseconds
// at 20 visits whenever the goroutine reading it waits for a core, and what
// arrives then is lost (bench/visits). Linux caps the size at net.core.rmem_max.
const udpReadBuffer = 4 << 20

// Addr is the address media arrives on.
func (s *SFU) Addr() net.Addr { return s.conn.LocalAddr() }

// newAPI is Pion with VP8 and Opus only (every browser sends both), NACK, RTCP
// reports and transport-wide congestion control, and one UDP port for all.
func newAPI(cfg Config, conn net.PacketConn, logs pionLogs) (*webrtc.API, error) {
	media := &webrtc.MediaEngine{}
	feedback := []webrtc.RTCPFeedback{{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"},
		{Type: "transport-cc"}}
	if err := media.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: videoCodec(feedback), PayloadType: 96}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, err
	}
	if err := media.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: audioCodec(), PayloadType: 111}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	registry := &interceptor.Registry{}
	// The NACK responder keeps the last packets of each forwarded stream to resend
	// them: 512 is about 2.8 s of 1.5 Mbit/s video, half Pion's default and half
	// the memory a visit takes (bench/visits: 9.5 MB a visit with 1024, three
	// quarters of it these buffers), longer than any resend that still helps.
	if err := webrtc.RegisterDefaultInterceptorsWithOptions(media, registry, webrtc.WithNackResponderOptions(nack.ResponderSize(512)),
		webrtc.WithInterceptorLoggerFactory(logs)); err != nil {
		return nil, err
	}
	settings := webrtc.SettingEngine{LoggerFactory: logs}
	settings.SetICEUDPMux(webrtc.NewICEUDPMux(logs.NewLogger("udpmux"), conn))
	settings.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	settings.SetIncludeLoopbackCandidate(cfg.Loopback)
	if len(cfg.PublicIPs) > 0 {
		if err := settings.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{External: cfg.PublicIPs,
			AsCandidateType: webrtc.ICECandidateTypeHost, Mode: webrtc.ICEAddressRewriteReplace}); err != nil {
			return nil, err
		}
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(media), webrtc.WithInterceptorRegistry(registry), webrtc.WithSettingEngine(settings)), nil
}

func videoCodec(feedback []webrtc.RTCPFeedback) webrtc.RTPCodecCapability {
	return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: feedback}
}

func audioCodec() webrtc.RTPCodecCapability {
	return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}
}

// ErrClosed is a room asked of an SFU that is shutting down.
var ErrClosed = errors.New("rtc: the media server is shutting down")

// Open returns the room of a visit, opening it with cfg unless it is open. It
// reports whether it opened it.
func (s *SFU) Open(cfg RoomConfig) (*Room, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rooms == nil {
		return nil, false, ErrClosed
	}
	if r, ok := s.rooms[cfg.ID]; ok && !r.ended() {
		return r, false, nil
	}
	r, err := newRoom(s, cfg)
	if err != nil {
		return nil, false, err
	}
	s.rooms[cfg.ID] = r
	go r.run()
	return r, true, nil
}

// Room returns the open room of a visit, if any.
func (s *SFU) Room(id string) (*Room, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.rooms[id]
	if !ok || r.ended() {
		return nil, false
	}
	return r, true
}

// Checks counts the open camera checks (echo rooms).
func (s *SFU) Checks() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.rooms {
		if r.cfg.Echo && !r.ended() {
			n++
		}
	}
	return n
}

// Rooms counts the open rooms.
func (s *SFU) Rooms() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.rooms {
		if !r.ended() {
			n++
		}
	}
	return n
}

func (s *SFU) forget(r *Room) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rooms[r.cfg.ID] == r {
		delete(s.rooms, r.cfg.ID)
	}
}

// Close drops every room without ending its visit (a server stopping: the visit
// stays live, and its participants rejoin when a server is back), and stops
// listening.
func (s *SFU) Close() error {
	s.mu.Lock()
	rooms := s.rooms
	s.rooms = nil
	s.mu.Unlock()
	for _, r := range rooms {
		r.drop()
	}
	return s.conn.Close()
}
