package rtc

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/ivfwriter"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"
	"github.com/pion/webrtc/v4/pkg/media/samplebuilder"
)

// The recorder is the room's Sink (Galène's diskwriter shape): it receives what
// each publisher sends and writes it as it is, without decoding, into one file per
// side and kind: the camera as VP8 in IVF, the microphone as Opus in Ogg. The
// merge into one playable file is the media package's, after the visit.
//
// The room hands it packets on each publisher's read goroutine, so WriteRTP only
// queues: one goroutine per recording reorders, depacketizes and writes, and when
// the disk falls behind so far that the queue is full, packets are dropped and
// counted rather than the visit stalled.
//
// All four files share one timeline, whose zero is the first packet the recording
// received, so the merge can lay them side by side: each file says where on it it
// starts, and inside a file the time between frames is the time between them as
// sent. A publisher that rejoins (a new connection: a new SSRC, new sequence
// numbers and timestamps) continues the same file: its media is placed at the time
// it arrived, the gap between the two connections stays a gap (video holds its last
// picture, audio is filled with silence), and video resumes at its next keyframe.

// DefaultRecorderQueue is how many packets may wait for the disk: about five
// seconds of both sides at the agency's default bitrate.
const DefaultRecorderQueue = 2048

const (
	videoClock = 90000
	audioClock = 48000
	// frameTicks is how long the last video frame of a file lasts, 1/30 s: the
	// file's end is its last frame plus this.
	frameTicks = videoClock / 30
	// opusFrame is 20 ms of Opus, the length of the silence filled into gaps.
	opusFrame = audioClock / 50
	// opusPreSkip is what Ogg Opus decoders drop from a file's start (the Ogg
	// writer's pre-skip, 80 ms); the recorder puts silence there, so that no sound
	// is lost and the sound that follows is on time.
	opusPreSkip = 3840
	// A source whose sequence numbers or timestamps leap by more than this is a
	// new stream, not losses: it is placed anew at the time it arrived.
	maxSeqJump  = 1000
	maxTimeJump = 10 * time.Second
	// Packets the sample builders wait for a late (retransmitted) packet before
	// giving up on a frame.
	videoMaxLate = 256
	audioMaxLate = 64
)

// opusSilence is 20 ms of silence, one CELT frame (what WebRTC sends during
// discontinuous transmission).
var opusSilence = []byte{0xf8, 0xff, 0xfe}

// RecorderConfig opens a recording.
type RecorderConfig struct {
	// Dir is the folder the files are written in; it must exist. A file that is
	// already there is never overwritten: the next name is taken ("family-video-2.ivf").
	Dir string
	// Queue is how many packets may wait for the disk (0: DefaultRecorderQueue).
	Queue int
	// Log is told of write errors (nil: nowhere).
	Log *slog.Logger
}

// RecordedFile is one file a recording wrote.
type RecordedFile struct {
	Role Role
	Kind webrtc.RTPCodecType // video (VP8 in IVF) or audio (Opus in Ogg)
	Path string
	// Start and End are where the file's media lies on the recording's timeline,
	// whose zero is the first packet the recording received.
	Start, End time.Duration
	Packets    int64 // RTP packets received for it
	Frames     int64 // video frames or Opus packets written
	Filled     int64 // 20 ms silences filled into gaps in the sound
	Skipped    int64 // frames not written: before a keyframe, late, out of time
	Sources    int   // streams it holds: more than one after a rejoin
}

// Recording is what a recorder wrote.
type Recording struct {
	Files []RecordedFile // in the order of roles, video before audio; only those written
	// Length is the recording's span: from its first packet to the end of the
	// file that ends last.
	Length time.Duration
	// Dropped counts packets lost because the disk did not keep up.
	Dropped int64
	// Err is the first error writing a file (that file stopped there).
	Err error
}

// Recorder writes a room's media to files. It is a Sink.
type Recorder struct {
	cfg     RecorderConfig
	log     *slog.Logger
	in      chan recItem
	closed  atomic.Bool
	dropped atomic.Int64
	quit    chan struct{}
	done    chan struct{}
	once    sync.Once

	mu     sync.Mutex // guards what Recording reads: the tracks' figures, t0, err
	tracks [4]*recTrack
	t0     time.Time
	err    error
}

type recItem struct {
	track int
	pkt   *rtp.Packet
	at    time.Time
}

// NewRecorder starts a recording into cfg.Dir. Files appear as media arrives: a
// recorder that received nothing wrote nothing. The room closes it when it ends;
// one a room never took (a privileged visit) is for its maker to close.
func NewRecorder(cfg RecorderConfig) (*Recorder, error) {
	st, err := os.Stat(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("rtc: recorder: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("rtc: recorder: %s is not a folder", cfg.Dir)
	}
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultRecorderQueue
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r := &Recorder{cfg: cfg, log: log, in: make(chan recItem, cfg.Queue), quit: make(chan struct{}), done: make(chan struct{})}
	for i, role := range publishers {
		r.tracks[2*i] = &recTrack{rec: r, role: role, kind: webrtc.RTPCodecTypeVideo, clock: videoClock}
		r.tracks[2*i+1] = &recTrack{rec: r, role: role, kind: webrtc.RTPCodecTypeAudio, clock: audioClock}
	}
	go r.run()
	return r, nil
}

// WriteRTP queues a publisher's packet; it never waits. The packet is kept after
// it returns (the room never reuses one). A full queue drops the packet.
func (r *Recorder) WriteRTP(from Role, kind webrtc.RTPCodecType, pkt *rtp.Packet) {
	var track int
	switch from {
	case Family:
	case Resident:
		track = 2
	default:
		return
	}
	switch kind {
	case webrtc.RTPCodecTypeVideo:
	case webrtc.RTPCodecTypeAudio:
		track++
	default:
		return
	}
	if r.closed.Load() || pkt == nil {
		return
	}
	select {
	case r.in <- recItem{track: track, pkt: pkt.Clone(), at: time.Now()}: // the room reuses pkt
	default:
		r.dropped.Add(1)
	}
}

// Close writes what is queued and closes the files. It returns when they are
// complete; calling it again does nothing.
func (r *Recorder) Close() {
	r.once.Do(func() {
		r.closed.Store(true)
		close(r.quit)
	})
	<-r.done
}

// Recording says what was written: complete once Close has returned, so far before.
func (r *Recorder) Recording() Recording {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := Recording{Dropped: r.dropped.Load(), Err: r.err}
	for _, t := range r.tracks {
		if t.out == nil && t.path == "" {
			continue
		}
		f := RecordedFile{Role: t.role, Kind: t.kind, Path: t.path, Start: t.ticks(t.first), End: t.ticks(t.pos),
			Packets: t.packets, Frames: t.frames, Filled: t.filled, Skipped: t.skipped, Sources: t.sources}
		rec.Files = append(rec.Files, f)
		rec.Length = max(rec.Length, f.End)
	}
	return rec
}

func (r *Recorder) run() {
	defer close(r.done)
	for {
		select {
		case it := <-r.in:
			r.handle(it)
		case <-r.quit:
			for {
				select {
				case it := <-r.in:
					r.handle(it)
				default:
					r.finish()
					return
				}
			}
		}
	}
}

func (r *Recorder) handle(it recItem) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.t0.IsZero() {
		r.t0 = it.at
	}
	r.tracks[it.track].push(it.pkt, it.at.Sub(r.t0))
}

func (r *Recorder) finish() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range r.tracks {
		t.flush()
		t.close()
	}
}

// fail stops a file at its first write error. r.mu is held.
func (r *Recorder) fail(t *recTrack, err error) {
	err = fmt.Errorf("rtc: recorder: %s %s: %w", t.role, t.kind, err)
	r.log.Error("recording stopped", "role", t.role, "kind", t.kind.String(), "err", err)
	if r.err == nil {
		r.err = err
	}
	t.failed = true
	t.close()
}

// recTrack is one side's video or audio: its file and the stream feeding it.
type recTrack struct {
	rec   *Recorder
	role  Role
	kind  webrtc.RTPCodecType
	clock int64

	// The stream now feeding the file.
	builder *samplebuilder.SampleBuilder
	ssrc    uint32
	lastSeq uint16
	lastTS  uint32
	srcBase uint32 // an RTP timestamp of this stream…
	dstBase int64  // …and where it lies on the timeline, in clock ticks
	needKey bool   // video after a new stream: nothing until a keyframe

	// The file.
	path   string
	out    io.Closer // the IVF or Ogg writer; nil before the first frame and after closing
	ivf    *ivfwriter.IVFWriter
	ogg    *oggwriter.OggWriter
	first  int64 // the file's start on the timeline, in ticks
	last   int64 // the last video frame's time
	pos    int64 // the file's end: after the last frame written
	failed bool

	packets, frames, filled, skipped int64
	sources                          int
}

func (t *recTrack) ticks(n int64) time.Duration {
	return time.Duration(n * int64(time.Second) / t.clock)
}

// push takes a packet that arrived at the given time on the recording's timeline.
func (t *recTrack) push(pkt *rtp.Packet, at time.Duration) {
	t.packets++
	if t.failed {
		return
	}
	if t.builder == nil || pkt.SSRC != t.ssrc || t.leaps(pkt) {
		t.flush()
		t.sources++
		now := int64(at) * t.clock / int64(time.Second)
		if t.out != nil {
			now = max(now, t.pos)
		}
		t.ssrc, t.srcBase, t.dstBase = pkt.SSRC, pkt.Timestamp, now
		t.needKey = t.kind == webrtc.RTPCodecTypeVideo
		// A new stream's sequence numbers have nothing to do with the last one's.
		if t.kind == webrtc.RTPCodecTypeVideo {
			t.builder = samplebuilder.New(videoMaxLate, &codecs.VP8Packet{}, videoClock)
		} else {
			t.builder = samplebuilder.New(audioMaxLate, &codecs.OpusPacket{}, audioClock)
		}
	}
	t.lastSeq, t.lastTS = pkt.SequenceNumber, pkt.Timestamp
	t.builder.Push(pkt)
	t.pop()
}

// leaps tells a packet of the same SSRC that cannot follow the last one: its
// sender started again.
func (t *recTrack) leaps(pkt *rtp.Packet) bool {
	seq := int(int16(pkt.SequenceNumber - t.lastSeq))
	ts := int64(int32(pkt.Timestamp - t.lastTS))
	limit := int64(maxTimeJump/time.Second) * t.clock
	return seq > maxSeqJump || seq < -maxSeqJump || ts > limit || ts < -limit
}

// flush writes what the sample builder still holds (the end of a stream).
func (t *recTrack) flush() {
	if t.builder == nil || t.failed {
		return
	}
	t.builder.Flush()
	t.pop()
}

func (t *recTrack) pop() {
	for s := t.builder.Pop(); s != nil && !t.failed; s = t.builder.Pop() {
		at := t.dstBase + int64(int32(s.PacketTimestamp-t.srcBase))
		var err error
		if t.kind == webrtc.RTPCodecTypeVideo {
			err = t.writeVideo(s.Data, at)
		} else {
			err = t.writeAudio(s.Data, at)
		}
		if err != nil {
			t.rec.fail(t, err)
		}
	}
}

func (t *recTrack) writeVideo(frame []byte, at int64) error {
	key := len(frame) >= 10 && frame[0]&1 == 0 && frame[3] == 0x9d && frame[4] == 0x01 && frame[5] == 0x2a
	if (t.needKey && !key) || (t.out != nil && at <= t.last) || at < 0 {
		t.skipped++ // undecodable without its keyframe, or out of time
		return nil
	}
	t.needKey = false
	if t.out == nil {
		f, err := t.create("ivf")
		if err != nil {
			return err
		}
		w := uint16(frame[6]) | uint16(frame[7]&0x3f)<<8
		h := uint16(frame[8]) | uint16(frame[9]&0x3f)<<8
		// Timestamps as they are, in the RTP clock: the gaps in a stream stay.
		t.ivf, err = ivfwriter.NewWith(f, ivfwriter.WithCodec(webrtc.MimeTypeVP8), ivfwriter.WithWidthAndHeight(w, h),
			ivfwriter.WithFrameRate(1, videoClock), ivfwriter.WithDirectPTS())
		if err != nil {
			f.Close()
			return err
		}
		t.out, t.first = t.ivf, at
	}
	// The frame, whole, as one RTP packet: the IVF writer takes it as it is.
	pkt := &rtp.Packet{Header: rtp.Header{Timestamp: uint32(at - t.first), Marker: true}, Payload: append([]byte{0x10}, frame...)}
	if err := t.ivf.WriteRTP(pkt); err != nil {
		return err
	}
	t.frames++
	t.last, t.pos = at, at+frameTicks
	return nil
}

func (t *recTrack) writeAudio(packet []byte, at int64) error {
	n := opusSamples(packet)
	if n == 0 || (t.out != nil && at < t.pos-opusFrame/2) || at < 0 {
		t.skipped++ // not Opus, or late: its time was written already
		return nil
	}
	if t.out == nil {
		f, err := t.create("ogg")
		if err != nil {
			return err
		}
		t.ogg, err = oggwriter.NewWith(f, audioClock, 2)
		if err != nil {
			f.Close()
			return err
		}
		// Decoders drop the pre-skip: let it be silence (as much as fits before).
		lead := min(opusPreSkip, at/opusFrame*opusFrame)
		t.out, t.first, t.pos = t.ogg, at-lead, at-lead
		for t.pos+opusFrame <= at {
			if err := t.writeOpus(opusSilence, opusFrame); err != nil {
				return err
			}
		}
	}
	// A gap (losses, a rejoin) is filled with silence, so what follows is on time.
	for at-t.pos >= opusFrame {
		if err := t.writeOpus(opusSilence, opusFrame); err != nil {
			return err
		}
		t.filled++
	}
	if err := t.writeOpus(packet, n); err != nil {
		return err
	}
	t.frames++
	return nil
}

func (t *recTrack) writeOpus(packet []byte, samples int64) error {
	if err := t.ogg.WriteRTP(&rtp.Packet{Payload: packet}); err != nil {
		return err
	}
	t.pos += samples
	return nil
}

// create opens the track's file, never one already there.
func (t *recTrack) create(ext string) (*os.File, error) {
	base := filepath.Join(t.rec.cfg.Dir, string(t.role)+"-"+t.kind.String())
	for i := 1; i <= 100; i++ {
		name := base + "." + ext
		if i > 1 {
			name = base + "-" + strconv.Itoa(i) + "." + ext
		}
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err == nil {
			t.path = name
		}
		return f, err
	}
	return nil, fmt.Errorf("no free file name for %s", base)
}

func (t *recTrack) close() {
	if t.out == nil {
		return
	}
	if err := t.out.Close(); err != nil && !t.failed {
		t.failed = true
		t.rec.log.Error("recording: closing a file", "path", t.path, "err", err)
		if t.rec.err == nil {
			t.rec.err = fmt.Errorf("rtc: recorder: %s: %w", t.path, err)
		}
	}
	t.out = nil
}

// opusSamples is the length of an Opus packet in 48 kHz samples, from its TOC
// byte (RFC 6716, 3.1); 0 for what is not an Opus packet.
func opusSamples(p []byte) int64 {
	if len(p) == 0 {
		return 0
	}
	toc := p[0]
	var frame int64
	switch config := toc >> 3; {
	case config < 12: // SILK: 10, 20, 40, 60 ms
		frame = []int64{480, 960, 1920, 2880}[config&3]
	case config < 16: // hybrid: 10, 20 ms
		frame = []int64{480, 960}[config&1]
	default: // CELT: 2.5, 5, 10, 20 ms
		frame = []int64{120, 240, 480, 960}[config&3]
	}
	var frames int64
	switch toc & 3 {
	case 0:
		frames = 1
	case 1, 2:
		frames = 2
	default:
		if len(p) < 2 {
			return 0
		}
		frames = int64(p[1] & 0x3f)
	}
	if n := frame * frames; n <= 120*audioClock/1000 {
		return n
	}
	return 0
}
