package media

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/semaphore"
)

// A clip is a short video a family records (a VideoGram). Clips are converted by
// ffprobe and ffmpeg run as child processes, and ffmpeg is attack surface: its
// demuxers follow playlists, data references and URLs if asked to. So a clip is
// only ever read as the one container its first bytes say it is (MP4/QuickTime/3GP,
// or Matroska/WebM), with the "file" protocol alone, data references off, under a
// time limit, at lower CPU priority and a bounded number at once.

// ClipSettings are what an operator can set about clip processing.
type ClipSettings struct {
	FFmpeg, FFprobe string // the programs, by path or name on PATH
	Workers         int    // conversions at once; 0 means half the cores, at least 1
	MaxBytes        int64  // largest upload taken; 0 means DefaultClipBytes
}

// DefaultClipBytes is the largest clip upload taken unless set otherwise.
const DefaultClipBytes = 100 << 20

// Limits of what a clip may be, beyond its length (the agency's setting).
const (
	clipGrace     = time.Second // a clip may run this much past its limit
	clipMaxLong   = 4096        // the longest side of a source frame ("4K")
	clipMaxShort  = 2304        // its shortest side
	clipMinSide   = 16          // smaller is not a picture anyone can see
	clipMaxFPS    = 240         // faster is not a camera, and costs to convert
	clipOutLong   = 1280        // 720p: the output's longest side…
	clipOutShort  = 720         // …and shortest side
	clipOutFPS    = 30          // at most
	posterQuality = "4"         // ffmpeg's JPEG scale: 2 best, 31 worst
)

// ClipFault is why a clip cannot be used; the family is told it in words, and
// the code is stored with the clip and is the API's stable code.
type ClipFault string

// The faults. Each is the API's error code and a message key ("clip.<code>").
const (
	NotAVideo        ClipFault = "not_a_video"       // no video in it, or not a container we take
	ClipTooLong      ClipFault = "video_too_long"    // longer than the limit (and its grace)
	ClipTooLarge     ClipFault = "video_too_large"   // more bytes than the size limit
	ClipUnreadable   ClipFault = "video_unreadable"  // damaged or cut short
	ClipUnsupported  ClipFault = "video_unsupported" // larger than 4K, absurd frame rate, tiny
	ClipProcessFault ClipFault = "video_failed"      // our conversion failed or took too long
	ClipLost         ClipFault = "video_lost"        // the upload's bytes were gone when its conversion began
)

// ClipError is a clip refused for a fault the family can understand.
type ClipError struct {
	Fault  ClipFault
	Detail string // for the log: what ffprobe or ffmpeg said
}

func (e *ClipError) Error() string {
	if e.Detail == "" {
		return "media: clip: " + string(e.Fault)
	}
	return "media: clip: " + string(e.Fault) + ": " + e.Detail
}

func clipFault(f ClipFault, format string, args ...any) error {
	return &ClipError{Fault: f, Detail: fmt.Sprintf(format, args...)}
}

// Clip is a converted clip: an MP4 (H.264 and AAC, index first, no metadata) in a
// file the caller owns, and a JPEG poster.
type Clip struct {
	Path          string // the MP4, in the folder given to Convert
	Size          int64
	Poster        []byte
	Duration      time.Duration
	Width, Height int
	HasAudio      bool
}

// Clips converts clips, a bounded number at once.
type Clips struct {
	ffmpeg, ffprobe string
	nice            []string // "nice -n 10" when the system has it
	slots           *semaphore.Weighted
	maxBytes        int64
}

// NewClips finds the programs and returns a converter, or says which program is
// missing.
func NewClips(s ClipSettings) (*Clips, error) {
	c := &Clips{maxBytes: s.MaxBytes}
	var err error
	if c.ffmpeg, err = exec.LookPath(orDefault(s.FFmpeg, "ffmpeg")); err != nil {
		return nil, fmt.Errorf("media: ffmpeg not found (install Debian's ffmpeg package or set its path): %w", err)
	}
	if c.ffprobe, err = exec.LookPath(orDefault(s.FFprobe, "ffprobe")); err != nil {
		return nil, fmt.Errorf("media: ffprobe not found (install Debian's ffmpeg package or set its path): %w", err)
	}
	// nice(1) lowers the child's priority before it runs, so every thread ffmpeg
	// starts inherits it; setting it after the start would race those threads.
	if n, err := exec.LookPath("nice"); err == nil {
		c.nice = []string{n, "-n", "10"}
	}
	workers := s.Workers
	if workers <= 0 {
		workers = max(1, runtime.NumCPU()/2)
	}
	c.slots = semaphore.NewWeighted(int64(workers))
	if c.maxBytes <= 0 {
		c.maxBytes = DefaultClipBytes
	}
	return c, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// MaxBytes is the largest upload a clip may be.
func (c *Clips) MaxBytes() int64 { return c.maxBytes }

// SniffClip tells the container of a clip from its first bytes: the ffmpeg
// demuxer to read it with, or NotAVideo. Nothing else is ever handed to ffmpeg, so
// a playlist, a concat list or an image sequence named ".mp4" is never opened as
// one.
func SniffClip(head []byte) (demuxer string, err error) {
	switch {
	case len(head) >= 4 && bytes.Equal(head[:4], []byte{0x1a, 0x45, 0xdf, 0xa3}):
		return "matroska", nil // Matroska and WebM share the EBML header
	case len(head) >= 8 && isBoxType(head[4:8]):
		return "mov", nil // ISO base media: MP4, QuickTime, 3GP
	}
	return "", &ClipError{Fault: NotAVideo, Detail: "unknown container"}
}

// isBoxType is an ISO base media box that can open a file: the file type box, or
// in QuickTime files written without one, the movie, data or padding boxes.
func isBoxType(t []byte) bool {
	switch string(t) {
	case "ftyp", "moov", "mdat", "wide", "free", "skip":
		return true
	}
	return false
}

// Convert checks the clip at src and writes it converted into dir. A clip longer
// than limit (plus a second's grace) is refused, as is one that is not a video, is
// damaged, is larger than 4K or runs at an absurd frame rate. It waits for a free
// slot first, giving up when ctx ends.
func (c *Clips) Convert(ctx context.Context, src, dir string, limit time.Duration) (Clip, error) {
	st, err := os.Stat(src)
	if err != nil {
		return Clip{}, err
	}
	if st.Size() > c.maxBytes {
		return Clip{}, clipFault(ClipTooLarge, "%d bytes", st.Size())
	}
	head := make([]byte, 16)
	f, err := os.Open(src)
	if err != nil {
		return Clip{}, err
	}
	n, _ := io.ReadFull(f, head)
	f.Close()
	demuxer, err := SniffClip(head[:n])
	if err != nil {
		return Clip{}, err
	}
	if err := c.slots.Acquire(ctx, 1); err != nil {
		return Clip{}, err
	}
	defer c.slots.Release(1)

	in, err := c.probe(ctx, demuxer, src)
	if err != nil {
		return Clip{}, err
	}
	if err := in.check(limit); err != nil {
		return Clip{}, err
	}
	out := filepath.Join(dir, "clip.mp4")
	if err := c.transcode(ctx, demuxer, src, out, in, limit); err != nil {
		return Clip{}, err
	}
	clip, err := c.finish(ctx, out, in, limit)
	if err != nil {
		os.Remove(out) // nothing of a refused clip is kept
	}
	return clip, err
}

// finish checks what came out of the conversion and takes its poster.
func (c *Clips) finish(ctx context.Context, out string, in probed, limit time.Duration) (Clip, error) {
	// What came out is ours and is read as the MP4 it is.
	got, err := c.probe(ctx, "mov", out)
	if err != nil {
		return Clip{}, clipFault(ClipProcessFault, "output: %v", err)
	}
	if got.video == nil {
		return Clip{}, clipFault(ClipUnreadable, "no frames could be decoded")
	}
	// A source whose length was unknown (a browser's WebM recording says none) was
	// cut at the limit plus a little: if it reached that, it was too long.
	if got.duration > limit+clipGrace {
		return Clip{}, clipFault(ClipTooLong, "%v", got.duration)
	}
	// A source that promised more than it held was cut short (a broken upload).
	if in.duration > 0 && got.duration < in.duration*9/10-500*time.Millisecond {
		return Clip{}, clipFault(ClipUnreadable, "%v of %v decoded", got.duration, in.duration)
	}
	poster, err := c.poster(ctx, out, got.duration)
	if err != nil {
		return Clip{}, clipFault(ClipProcessFault, "poster: %v", err)
	}
	ost, err := os.Stat(out)
	if err != nil {
		return Clip{}, err
	}
	return Clip{
		Path: out, Size: ost.Size(), Poster: poster, Duration: got.duration,
		Width: got.video.Width, Height: got.video.Height, HasAudio: got.audio,
	}, nil
}

// probed is what ffprobe says of a file.
type probed struct {
	duration time.Duration // 0 when the container does not say
	video    *probeStream  // the first real video stream
	fps      float64
	audio    bool
}

type probeStream struct {
	CodecType    string            `json:"codec_type"`
	Width        int               `json:"width"`
	Height       int               `json:"height"`
	RFrameRate   string            `json:"r_frame_rate"`
	AvgFrameRate string            `json:"avg_frame_rate"`
	Duration     string            `json:"duration"`
	Disposition  map[string]int    `json:"disposition"`
	Tags         map[string]string `json:"tags"`
}

// inputArgs read path as one demuxer over the file protocol alone, data references
// off (a QuickTime file can point at other files), so nothing but the file is read.
func inputArgs(demuxer, path string) []string {
	args := []string{"-protocol_whitelist", "file", "-f", demuxer}
	if demuxer == "mov" {
		args = append(args, "-enable_drefs", "0")
	}
	return append(args, "-i", "file:"+path)
}

func (c *Clips) probe(ctx context.Context, demuxer, path string) (probed, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	args := append([]string{"-v", "error", "-print_format", "json", "-show_format", "-show_streams"},
		inputArgs(demuxer, path)...)
	// ffprobe takes its input as -i too.
	stdout, stderr, err := c.run(ctx, c.ffprobe, args)
	if err != nil {
		if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return probed{}, clipFault(ClipUnreadable, "ffprobe took too long")
		}
		if ctx.Err() != nil {
			return probed{}, ctx.Err()
		}
		return probed{}, clipFault(ClipUnreadable, "ffprobe: %s", firstLine(stderr))
	}
	var doc struct {
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
		Streams []probeStream `json:"streams"`
	}
	if err := json.Unmarshal(stdout, &doc); err != nil {
		return probed{}, clipFault(ClipUnreadable, "ffprobe output: %v", err)
	}
	var p probed
	p.duration = seconds(doc.Format.Duration)
	for i := range doc.Streams {
		s := &doc.Streams[i]
		switch s.CodecType {
		case "video":
			// A cover picture in an audio file is a "video" stream of one frame.
			if p.video == nil && s.Disposition["attached_pic"] == 0 {
				p.video = s
				// The average is the rate frames really come at. r_frame_rate is
				// ffprobe's guess of a base rate, which for a browser's WebM
				// recording (variable timing) is its timebase, "1000/1": no
				// reason to refuse it. Without an average the rate is not known,
				// and the conversion's own time limit bounds what it costs.
				p.fps = rate(s.AvgFrameRate)
				p.duration = max(p.duration, seconds(s.Duration))
			}
		case "audio":
			p.audio = true
		}
	}
	return p, nil
}

// check refuses what must not be converted.
func (p probed) check(limit time.Duration) error {
	v := p.video
	if v == nil {
		return clipFault(NotAVideo, "no video stream")
	}
	if p.duration > limit+clipGrace {
		return clipFault(ClipTooLong, "%v", p.duration)
	}
	long, short := max(v.Width, v.Height), min(v.Width, v.Height)
	if short < clipMinSide || long > clipMaxLong || short > clipMaxShort {
		return clipFault(ClipUnsupported, "%dx%d", v.Width, v.Height)
	}
	if p.fps > clipMaxFPS {
		return clipFault(ClipUnsupported, "%.0f fps", p.fps)
	}
	return nil
}

// transcode writes the clip as H.264 (720p at most, 30 fps at most, even sides,
// yuv420p) and AAC in an MP4 whose index is at the front, carrying no metadata:
// phones write the place a clip was taken into it. Output is cut at the limit
// plus a little, so a source that does not say its length cannot make work
// without end; the run has a time limit in proportion to the clip's length.
func (c *Clips) transcode(ctx context.Context, demuxer, src, out string, in probed, limit time.Duration) error {
	length := limit
	if in.duration > 0 && in.duration < limit {
		length = in.duration
	}
	ctx, cancel := context.WithTimeout(ctx, transcodeLimit(length))
	defer cancel()
	args := TranscodeArgs(demuxer, src, out, limit)
	if _, stderr, err := c.run(ctx, c.ffmpeg, args); err != nil {
		os.Remove(out)
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			return clipFault(ClipProcessFault, "ffmpeg took longer than %v", transcodeLimit(length))
		case ctx.Err() != nil:
			return ctx.Err()
		}
		return clipFault(ClipUnreadable, "ffmpeg: %s", firstLine(stderr))
	}
	return nil
}

// transcodeLimit is the time a conversion of a clip of length may take: ten times
// its length (a 2-core server converts 720p at about real time), and half a
// minute to start.
func transcodeLimit(length time.Duration) time.Duration { return 30*time.Second + 10*length }

// ConvertLimit bounds all of Convert for clips of at most limit: the conversion,
// and the probes and the poster (20 s each at most), not counting the wait for a
// free slot.
func ConvertLimit(limit time.Duration) time.Duration { return transcodeLimit(limit) + 3*20*time.Second }

// TranscodeArgs are ffmpeg's arguments for converting a clip read with demuxer from
// src into out, for clips of at most limit (bench/videogram runs ffmpeg with them to
// compare).
func TranscodeArgs(demuxer, src, out string, limit time.Duration) []string {
	// The box is 1280x720 turned to the frame's orientation (after the rotation a
	// phone recorded, which ffmpeg applies), never enlarged, sides even.
	scale := "min(1,min(" + strconv.Itoa(clipOutLong) + "/max(iw,ih)," + strconv.Itoa(clipOutShort) + "/min(iw,ih)))"
	vf := "scale=w='trunc(iw*" + scale + "/2)*2':h='trunc(ih*" + scale + "/2)*2',setsar=1,format=yuv420p"
	cut := limit + clipGrace + 500*time.Millisecond
	args := []string{"-nostdin", "-hide_banner", "-v", "error", "-xerror", "-y"}
	args = append(args, inputArgs(demuxer, src)...)
	args = append(args,
		"-map", "0:v:0", "-map", "0:a:0?",
		"-map_metadata", "-1", "-map_chapters", "-1", "-sn", "-dn",
		"-t", strconv.FormatFloat(cut.Seconds(), 'f', 3, 64),
		"-vf", vf, "-fpsmax", strconv.Itoa(clipOutFPS),
		"-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-profile:v", "high",
		"-c:a", "aac", "-b:a", "128k", "-ac", "2",
		"-movflags", "+faststart", "-metadata:s", "handler_name=", "-f", "mp4", "file:"+out,
	)
	return args
}

// poster is a frame a second in (or halfway through a shorter clip), since a
// camera's first frames are often dark.
func (c *Clips) poster(ctx context.Context, clip string, d time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	at := min(time.Second, d/2)
	args := []string{"-nostdin", "-hide_banner", "-v", "error",
		"-ss", strconv.FormatFloat(at.Seconds(), 'f', 3, 64)}
	args = append(args, inputArgs("mov", clip)...)
	args = append(args, "-frames:v", "1", "-map_metadata", "-1", "-c:v", "mjpeg", "-q:v", posterQuality, "-f", "image2pipe", "pipe:1")
	stdout, stderr, err := c.run(ctx, c.ffmpeg, args)
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, firstLine(stderr))
	}
	if !bytes.HasPrefix(stdout, []byte("\xff\xd8\xff")) {
		return nil, errors.New("no JPEG came out")
	}
	return stdout, nil
}

// run starts a program at lower priority, with an empty environment (no proxy
// settings or library paths to follow) and its output captured.
func (c *Clips) run(ctx context.Context, prog string, args []string) (stdout, stderr []byte, err error) {
	argv := append(append(append([]string{}, c.nice...), prog), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &limitedBuffer{max: 16 << 10, b: &errOut}
	cmd.WaitDelay = 5 * time.Second
	dieWithParent(cmd)
	err = cmd.Run()
	return out.Bytes(), errOut.Bytes(), err
}

// limitedBuffer keeps the first max bytes of what is written to it: a damaged file
// can make ffmpeg write an error for every frame.
type limitedBuffer struct {
	max int
	b   *bytes.Buffer
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// seconds reads ffprobe's "12.345000"; "N/A" or nothing is 0.
func seconds(s string) time.Duration {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) || f > 1e7 {
		return 0
	}
	return time.Duration(f * float64(time.Second))
}

// rate reads ffprobe's "30000/1001".
func rate(s string) float64 {
	num, den, ok := strings.Cut(s, "/")
	if !ok {
		den = "1"
	}
	n, err1 := strconv.ParseFloat(num, 64)
	d, err2 := strconv.ParseFloat(den, 64)
	if err1 != nil || err2 != nil || d == 0 {
		return 0
	}
	return n / d
}
