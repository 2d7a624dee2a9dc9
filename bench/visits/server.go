package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime"
	rpprof "runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/kinlink/kinlink/internal/visits/rtc"
)

// The server side runs in a child process of its own (this program re-executed
// with -serve), so that its CPU time is its own and not the load generators'. It
// prints the address of a small HTTP server: GET /join?visit=ID&role=ROLE upgrades
// to a WebSocket carrying the signalling (JSON as rtc.Message), GET /stats answers
// with the process's CPU time and memory. It exits when its stdin closes.

// stats is what the server side reports.
type stats struct {
	CPU      time.Duration `json:"cpu"`       // user + system, all threads (getrusage)
	Heap     uint64        `json:"heap"`      // heap in use after a collection (with ?gc=1)
	RSS      int64         `json:"rss"`       // resident set, bytes
	Recorded int64         `json:"recorded"`  // packets the recorders took
	Dropped  int64         `json:"rec_drops"` // packets it dropped (its queue was full)
	UDPDrops int64         `json:"udp_drops"` // datagrams its UDP sockets' receive buffers dropped
}

func serve(mode, profile string) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	switch mode {
	case "kinlink":
		if recordDir, err = os.MkdirTemp("", "kinlink-bench-visits-"); err != nil {
			return err
		}
		defer os.RemoveAll(recordDir)
		sfu, err := rtc.New(rtc.Config{UDP: "127.0.0.1:0", Loopback: true}, slog.New(slog.DiscardHandler))
		if err != nil {
			return err
		}
		mux.HandleFunc("/join", kinlinkJoin(sfu))
	case "bare":
		b, err := newBare()
		if err != nil {
			return err
		}
		mux.HandleFunc("/join", b.join)
	default:
		return fmt.Errorf("no such server %q", mode)
	}
	mux.HandleFunc("/debug/pprof/", pprof.Index) // for looking into a run by hand
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		var s stats
		if r.URL.Query().Get("gc") != "" {
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			s.Heap = m.HeapInuse
		}
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		s.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		s.RSS = rss(os.Getpid())
		s.Recorded, s.Dropped = recorded.Load(), recorderDrops()
		s.UDPDrops = udpDrops()
		_ = json.NewEncoder(w).Encode(s)
	})
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return err
		}
		if err := rpprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	fmt.Println(l.Addr().String())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		if profile != "" {
			rpprof.StopCPUProfile()
		}
		os.Exit(0)
	}()
	return http.Serve(l, mux)
}

// rss reads a process's resident set in bytes (0 if unknown).
func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// udpDrops sums the drops counter of this process's UDP sockets (/proc/net/udp,
// matched by inode with /proc/self/fd): datagrams that arrived while a socket's
// receive buffer was full.
func udpDrops() int64 {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	mine := map[string]bool{}
	for _, fd := range fds {
		target, err := os.Readlink("/proc/self/fd/" + fd.Name())
		if inode, ok := strings.CutPrefix(target, "socket:["); err == nil && ok {
			mine[strings.TrimSuffix(inode, "]")] = true
		}
	}
	var drops int64
	for _, file := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		b, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 13 || !mine[f[9]] {
				continue
			}
			n, _ := strconv.ParseInt(f[len(f)-1], 10, 64)
			drops += n
		}
	}
	return drops
}

// kinlinkJoin is a participant joining a visit's room through rtc.SFU, as the
// visits API's signalling endpoint does: the room opens on the first join, with a
// recorder and the 1.5 Mbit/s cap.
func kinlinkJoin(sfu *rtc.SFU) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		visit, role := r.URL.Query().Get("visit"), rtc.Role(r.URL.Query().Get("role"))
		rec, err := newRecorder(visit)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		room, opened, err := sfu.Open(rtc.RoomConfig{ID: visit, Ends: time.Now().Add(time.Hour), BitrateKbps: 1500, Sink: rec})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if !opened {
			rec.Close()
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		_ = room.Join(context.Background(), role, rtc.NewSocketConn(c))
	}
}

// recorder is the room's real recorder (rtc.Recorder: reordering, depacketising,
// writing IVF and Ogg files into a folder of the run's), counted.
type recorder struct {
	*rtc.Recorder
}

var (
	recorded  atomic.Int64
	recorders struct {
		sync.Mutex
		all []*rtc.Recorder
	}
	recordDir string // the run's folder, made once
)

func newRecorder(visit string) (*recorder, error) {
	dir := filepath.Join(recordDir, visit)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	r, err := rtc.NewRecorder(rtc.RecorderConfig{Dir: dir})
	if err != nil {
		return nil, err
	}
	recorders.Lock()
	recorders.all = append(recorders.all, r)
	recorders.Unlock()
	return &recorder{r}, nil
}

// recorderDrops are the packets the recorders dropped because the disk fell behind.
func recorderDrops() int64 {
	recorders.Lock()
	defer recorders.Unlock()
	var n int64
	for _, r := range recorders.all {
		n += r.Recording().Dropped
	}
	return n
}

func (r *recorder) WriteRTP(from rtc.Role, kind webrtc.RTPCodecType, pkt *rtp.Packet) {
	recorded.Add(1)
	r.Recorder.WriteRTP(from, kind, pkt)
}

// bare is the limit: a minimal Pion forwarder with no Kinlink code, in the shape
// of Pion's broadcast example. Each pair has one publisher and one receiver; the
// publisher's tracks are read into a reused buffer and written to a
// TrackLocalStaticRTP the receiver is bound to. Pion's default codecs and
// interceptors (NACK, RTCP reports, TWCC), one UDP port per connection, loopback
// only.
type bare struct {
	api *webrtc.API

	mu    sync.Mutex
	pairs map[string][2]*webrtc.TrackLocalStaticRTP // video, audio
}

func newBare() (*bare, error) {
	api, err := loopbackAPI()
	if err != nil {
		return nil, err
	}
	return &bare{api: api, pairs: map[string][2]*webrtc.TrackLocalStaticRTP{}}, nil
}

// loopbackAPI is Pion with its default codecs and interceptors, on loopback UDP,
// without mDNS; the load generators use it too.
func loopbackAPI() (*webrtc.API, error) {
	media := &webrtc.MediaEngine{}
	if err := media.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	registry := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(media, registry); err != nil {
		return nil, err
	}
	settings := webrtc.SettingEngine{}
	settings.SetIncludeLoopbackCandidate(true)
	settings.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	settings.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	settings.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled) // no multicast socket per connection
	return webrtc.NewAPI(webrtc.WithMediaEngine(media), webrtc.WithInterceptorRegistry(registry), webrtc.WithSettingEngine(settings)), nil
}

func (b *bare) tracks(id string) ([2]*webrtc.TrackLocalStaticRTP, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t, ok := b.pairs[id]; ok {
		return t, nil
	}
	video, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", id)
	if err != nil {
		return [2]*webrtc.TrackLocalStaticRTP{}, err
	}
	audio, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "audio", id)
	if err != nil {
		return [2]*webrtc.TrackLocalStaticRTP{}, err
	}
	t := [2]*webrtc.TrackLocalStaticRTP{video, audio}
	b.pairs[id] = t
	return t, nil
}

// join is a publisher (role "pub") or a receiver ("sub") of a pair. The server
// offers, as Kinlink's does.
func (b *bare) join(w http.ResponseWriter, r *http.Request) {
	tracks, err := b.tracks(r.URL.Query().Get("visit"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	publisher := r.URL.Query().Get("role") == "pub"
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	pc, err := b.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return
	}
	defer pc.Close()
	var wmu sync.Mutex
	send := func(m signal) {
		wmu.Lock()
		defer wmu.Unlock()
		_ = wsjson.Write(context.Background(), c, m)
	}
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand != nil {
			init := cand.ToJSON()
			send(signal{Type: "candidate", Candidate: &init})
		}
	})
	if publisher {
		for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
			if _, err := pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
				return
			}
		}
		pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			out := tracks[0]
			if t.Kind() == webrtc.RTPCodecTypeAudio {
				out = tracks[1]
			}
			buf := make([]byte, 1500)
			for {
				n, _, err := t.Read(buf)
				if err != nil {
					return
				}
				_, _ = out.Write(buf[:n])
			}
		})
	} else {
		for _, t := range tracks {
			s, err := pc.AddTrack(t)
			if err != nil {
				return
			}
			go drainRTCP(s)
		}
	}
	offer, err := pc.CreateOffer(nil)
	if err == nil {
		err = pc.SetLocalDescription(offer)
	}
	if err != nil {
		return
	}
	send(signal{Type: "offer", SDP: offer.SDP})
	for {
		var m signal
		if err := wsjson.Read(context.Background(), c, &m); err != nil {
			return
		}
		switch m.Type {
		case "answer":
			if pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.SDP}) != nil {
				return
			}
		case "candidate":
			if m.Candidate != nil {
				_ = pc.AddICECandidate(*m.Candidate) // as Kinlink's: a refused candidate is not fatal
			}
		}
	}
}

// drainRTCP reads a sender's RTCP, which Pion's interceptors need read.
func drainRTCP(s *webrtc.RTPSender) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := s.Read(buf); err != nil {
			return
		}
	}
}

// signal is the signalling message both servers speak (rtc.Message's JSON, the
// fields a client needs).
type signal struct {
	Type      string                   `json:"type"`
	SDP       string                   `json:"sdp,omitempty"`
	Candidate *webrtc.ICECandidateInit `json:"candidate,omitempty"`
}
