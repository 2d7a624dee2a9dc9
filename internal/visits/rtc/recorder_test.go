package rtc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"

	kmedia "github.com/kinlink/kinlink/internal/media"
	"github.com/kinlink/kinlink/internal/visits/rtc"
	"github.com/kinlink/kinlink/internal/visits/rtc/rtctest"
)

// mediaTools returns the clip converter (which merges visits), or skips when
// ffmpeg is not installed (and fails when KINLINK_MEDIA_TOOLS=require, as in CI).
func mediaTools(t *testing.T) *kmedia.Clips {
	t.Helper()
	c, err := kmedia.NewClips(kmedia.ClipSettings{})
	if err != nil {
		if os.Getenv("KINLINK_MEDIA_TOOLS") == "require" {
			t.Fatalf("KINLINK_MEDIA_TOOLS=require, but %v", err)
		}
		t.Skipf("skipping: %v (apt-get install ffmpeg)", err)
	}
	return c
}

// encoded is real media to send: VP8 frames at 30 a second (a keyframe every half
// second) and 20 ms Opus packets, made by ffmpeg from its test sources.
type encoded struct {
	video [][]byte
	audio [][]byte
}

func encode(t *testing.T, size, tone string, secs string) encoded {
	t.Helper()
	dir := t.TempDir()
	run := func(out string, args ...string) []byte {
		path := filepath.Join(dir, out)
		cmd := exec.Command("ffmpeg", append(append([]string{"-nostdin", "-v", "error", "-y"}, args...), path)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg %s: %v\n%s", out, err, b)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ivf := run("v.ivf", "-f", "lavfi", "-i", "testsrc=size="+size+":rate=30:duration="+secs,
		"-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "400k", "-g", "15", "-f", "ivf")
	// One Opus packet a page, as pion's Ogg reader reads them.
	ogg := run("a.ogg", "-f", "lavfi", "-i", "sine=frequency="+tone+":duration="+secs,
		"-c:a", "libopus", "-b:a", "32k", "-frame_duration", "20", "-page_duration", "20000", "-f", "ogg")
	var e encoded
	vr, _, err := ivfreader.NewWith(bytes.NewReader(ivf))
	if err != nil {
		t.Fatal(err)
	}
	for {
		frame, _, err := vr.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		e.video = append(e.video, frame)
	}
	ar, _, err := oggreader.NewWith(bytes.NewReader(ogg))
	if err != nil {
		t.Fatal(err)
	}
	for {
		page, h, err := ar.ParseNextPage()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if h.GranulePosition == 0 || bytes.HasPrefix(page, []byte("OpusTags")) {
			continue
		}
		e.audio = append(e.audio, page)
	}
	return e
}

// sender is a participant that publishes real media from samples, as a browser
// publishes its camera and microphone.
type sender struct {
	t         *testing.T
	name      string
	pc        *webrtc.PeerConnection
	pipe      *rtctest.Pipe
	video     *webrtc.TrackLocalStaticSample
	audio     *webrtc.TrackLocalStaticSample
	connected chan struct{}
	once      sync.Once
}

func newSender(t *testing.T, name string) *sender {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	registry := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, registry); err != nil {
		t.Fatal(err)
	}
	settings := webrtc.SettingEngine{}
	settings.SetIncludeLoopbackCandidate(true)
	settings.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	settings.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(registry), webrtc.WithSettingEngine(settings))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	s := &sender{t: t, name: name, pc: pc, pipe: rtctest.NewPipe(), connected: make(chan struct{})}
	s.video, _ = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", name)
	s.audio, _ = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", name)
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateConnected {
			s.once.Do(func() { close(s.connected) })
		}
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
		}
	})
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			init := c.ToJSON()
			s.pipe.ToServer <- rtc.Message{Type: rtc.TypeCandidate, Candidate: &init}
		}
	})
	t.Cleanup(func() { pc.Close() })
	return s
}

// join enters the room as role, answering its offer with camera and microphone.
func (s *sender) join(r *rtc.Room, role rtc.Role) {
	go func() { _ = r.Join(context.Background(), role, rtctest.ServerEnd{Pipe: s.pipe}) }()
	go func() {
		added := false
		for {
			var m rtc.Message
			select {
			case m = <-s.pipe.ToClient:
			case <-s.pipe.Closed():
				return
			}
			switch m.Type {
			case rtc.TypeOffer:
				if err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: m.SDP}); err != nil {
					s.t.Errorf("%s: offer: %v", s.name, err)
					return
				}
				if !added {
					added = true
					if _, err := s.pc.AddTrack(s.video); err != nil {
						s.t.Errorf("%s: %v", s.name, err)
					}
					if _, err := s.pc.AddTrack(s.audio); err != nil {
						s.t.Errorf("%s: %v", s.name, err)
					}
				}
				answer, err := s.pc.CreateAnswer(nil)
				if err == nil {
					err = s.pc.SetLocalDescription(answer)
				}
				if err != nil {
					s.t.Errorf("%s: answer: %v", s.name, err)
					return
				}
				s.pipe.ToServer <- rtc.Message{Type: rtc.TypeAnswer, SDP: answer.SDP}
			case rtc.TypeCandidate:
				_ = s.pc.AddICECandidate(*m.Candidate)
			}
		}
	}()
}

// leave drops the connection, as a phone losing its network does.
func (s *sender) leave() {
	s.pc.Close()
	rtctest.ServerEnd{Pipe: s.pipe}.Close("gone")
}

// send publishes the media at the pace it was recorded, once connected, for at
// most d, and returns when it began and ended (the end of its last frame).
func (s *sender) send(e encoded, d time.Duration) (from, to time.Time) {
	select {
	case <-s.connected:
	case <-time.After(20 * time.Second):
		s.t.Errorf("%s: never connected", s.name)
		return
	}
	const frame, packet = time.Second / 30, 20 * time.Millisecond
	from = time.Now()
	var wg sync.WaitGroup
	pace := func(track *webrtc.TrackLocalStaticSample, samples [][]byte, every time.Duration) {
		defer wg.Done()
		for i, data := range samples {
			at := time.Duration(i) * every
			if at+every > d {
				return
			}
			time.Sleep(time.Until(from.Add(at)))
			if err := track.WriteSample(media.Sample{Data: data, Duration: every}); err != nil {
				s.t.Errorf("%s: %v", s.name, err)
				return
			}
		}
	}
	wg.Add(2)
	go pace(s.video, e.video, frame)
	go pace(s.audio, e.audio, packet)
	wg.Wait()
	return from, time.Now()
}

func probeSeconds(t *testing.T, path string) time.Duration {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-print_format", "json", "-show_format", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var p struct {
		Format struct {
			Duration json.Number `json:"duration"`
		} `json:"format"`
	}
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	f, _ := p.Format.Duration.Float64()
	return time.Duration(f * float64(time.Second))
}

// meanVolume is the mean volume (dB) of a file's sound between from and to seconds.
func meanVolume(t *testing.T, path string, from, to float64) float64 {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-nostdin", "-v", "info", "-ss", strconv.FormatFloat(from, 'f', 2, 64),
		"-to", strconv.FormatFloat(to, 'f', 2, 64), "-i", path, "-af", "volumedetect", "-f", "null", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("volumedetect: %v\n%s", err, out)
	}
	i := bytes.Index(out, []byte("mean_volume: "))
	if i < 0 {
		return -91 // no sound at all
	}
	rest := out[i+len("mean_volume: "):]
	v, err := strconv.ParseFloat(string(rest[:bytes.IndexByte(rest, ' ')]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func near(got, want, within time.Duration) bool {
	d := got - want
	return d >= -within && d <= within
}

// TestARecordedVisitMergesToItsLength is a visit with real VP8 and Opus both
// ways: the family sends for 7 seconds; the resident for 3, drops, and a second
// later sends again for 3 from a new connection. The recorder is the room's sink; after the end its files
// merge into one MP4 as long as the time media was sent.
func TestARecordedVisitMergesToItsLength(t *testing.T) {
	clips := mediaTools(t)
	familyMedia, residentMedia := encode(t, "320x240", "440", "7"), encode(t, "240x320", "660", "4")

	dir := t.TempDir()
	rec, err := rtc.NewRecorder(rtc.RecorderConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	sfu := newSFU(t)
	room, _, err := sfu.Open(rtc.RoomConfig{ID: "visit-rec", Ends: time.Now().Add(time.Minute), Sink: rec})
	if err != nil {
		t.Fatal(err)
	}
	family, resident := newSender(t, "family"), newSender(t, "resident")
	family.join(room, rtc.Family)
	resident.join(room, rtc.Resident)

	var mu sync.Mutex
	var first, last time.Time
	sent := func(from, to time.Time) {
		mu.Lock()
		defer mu.Unlock()
		if first.IsZero() || from.Before(first) {
			first = from
		}
		if to.After(last) {
			last = to
		}
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); sent(family.send(familyMedia, 7*time.Second)) }()
	go func() {
		defer wg.Done()
		sent(resident.send(residentMedia, 3*time.Second))
		resident.leave()
		time.Sleep(time.Second) // a phone finding its network again
		back := newSender(t, "resident")
		back.join(room, rtc.Resident)
		sent(back.send(residentMedia, 3*time.Second))
	}()
	wg.Wait()
	room.End("family", "hung_up") // closes the recorder: its files are complete
	span := last.Sub(first)

	got := rec.Recording()
	if got.Err != nil || got.Dropped != 0 {
		t.Fatalf("recording: %v, %d dropped", got.Err, got.Dropped)
	}
	files := map[string]rtc.RecordedFile{}
	for _, f := range got.Files {
		files[string(f.Role)+"-"+f.Kind.String()] = f
		t.Logf("%s %s: %s, %v to %v, %d packets, %d frames, %d silences filled, %d skipped, %d sources",
			f.Role, f.Kind, filepath.Base(f.Path), f.Start, f.End, f.Packets, f.Frames, f.Filled, f.Skipped, f.Sources)
	}
	if len(files) != 4 {
		t.Fatalf("files %v", got.Files)
	}
	for _, name := range []string{"resident-video", "resident-audio"} {
		if files[name].Sources != 2 {
			t.Errorf("%s: %d sources, want 2 (the resident rejoined)", name, files[name].Sources)
		}
	}
	// Both connections' video decode without an error: the second begins at a keyframe.
	if out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-xerror", "-i", files["resident-video"].Path, "-f", "null", "-").CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("the resident's video after the rejoin: %v %s", err, out)
	}
	// The gap between the resident's connections is kept in the sound (filled with
	// silence), so the file runs as long as the time it spans.
	a := files["resident-audio"]
	if a.Filled == 0 {
		t.Error("no silence filled between the resident's connections")
	}
	if d := probeSeconds(t, a.Path); !near(d, a.End-a.Start, 200*time.Millisecond) {
		t.Errorf("the resident's sound lasts %v, but spans %v", d, a.End-a.Start)
	}

	// …and at its place: silent while the resident was away, sounding after.
	if away, back := meanVolume(t, a.Path, 3.3, 3.8), meanVolume(t, a.Path, 4.5, 5.5); away > -60 || back < -40 {
		t.Errorf("the resident's sound: %.1f dB while away, %.1f dB after coming back", away, back)
	}

	side := func(role rtc.Role) kmedia.VisitSide {
		v, a := files[string(role)+"-video"], files[string(role)+"-audio"]
		return kmedia.VisitSide{Video: &kmedia.VisitTrack{Path: v.Path, Start: v.Start}, Audio: &kmedia.VisitTrack{Path: a.Path, Start: a.Start}}
	}
	out := filepath.Join(t.TempDir(), "visit.mp4")
	merged, err := clips.MergeVisit(context.Background(), kmedia.VisitRecording{Sides: [2]kmedia.VisitSide{side(rtc.Family), side(rtc.Resident)}, Length: got.Length}, out)
	if err != nil {
		t.Fatal(err)
	}
	probed := probeSeconds(t, out)
	t.Logf("media sent for %v; recording %v; merged %v (ffprobe: %v)", span, got.Length, merged, probed)
	if !near(merged, span, time.Second) || !near(probed, span, time.Second) {
		t.Errorf("merged %v (ffprobe %v), but media was sent for %v", merged, probed, span)
	}
	streams, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name", "-of", "csv=p=0", out).Output()
	if err != nil {
		t.Fatal(err)
	}
	if s := string(bytes.TrimSpace(streams)); s != "h264,video\naac,audio" {
		t.Errorf("streams %q, want one H.264 video and one AAC audio", s)
	}
}

// TestAPrivilegedVisitGivenARecorderWritesNoFile: the room drops the sink.
func TestAPrivilegedVisitGivenARecorderWritesNoFile(t *testing.T) {
	dir := t.TempDir()
	rec, err := rtc.NewRecorder(rtc.RecorderConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close() // the room never will: it never took it
	sfu := newSFU(t)
	room, _, err := sfu.Open(rtc.RoomConfig{ID: "visit-attorney", Ends: time.Now().Add(time.Minute), Privileged: true, Sink: rec})
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
	room.End("staff", "Count time")
	rec.Close()
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("a privileged visit left files: %v", left)
	}
	if r := rec.Recording(); len(r.Files) != 0 || r.Length != 0 {
		t.Fatalf("a privileged visit was recorded: %+v", r)
	}
}
