package media_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/media"
)

// clipTools returns a converter, or skips when ffmpeg is not installed (and fails
// when KINLINK_MEDIA_TOOLS=require, as in CI).
func clipTools(t *testing.T, s media.ClipSettings) *media.Clips {
	t.Helper()
	c, err := media.NewClips(s)
	if err != nil {
		if os.Getenv("KINLINK_MEDIA_TOOLS") == "require" {
			t.Fatalf("KINLINK_MEDIA_TOOLS=require, but %v", err)
		}
		t.Skipf("skipping: %v (apt-get install ffmpeg)", err)
	}
	return c
}

// makeClip runs ffmpeg with args to make a test clip at dir/name.
func makeClip(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	cmd := exec.Command("ffmpeg", append(append([]string{"-nostdin", "-v", "error", "-y"}, args...), out)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("making %s: %v\n%s", name, err, b)
	}
	return out
}

// testsrc is a lavfi video of size and rate for secs seconds, with a tone.
func testsrc(size, rate, secs string) []string {
	return []string{"-f", "lavfi", "-i", "testsrc=size=" + size + ":rate=" + rate + ":duration=" + secs,
		"-f", "lavfi", "-i", "sine=frequency=440:duration=" + secs, "-shortest"}
}

type probeOut struct {
	Format struct {
		Duration string            `json:"duration"`
		Tags     map[string]string `json:"tags"`
	} `json:"format"`
	Streams []struct {
		CodecType    string            `json:"codec_type"`
		CodecName    string            `json:"codec_name"`
		PixFmt       string            `json:"pix_fmt"`
		Width        int               `json:"width"`
		Height       int               `json:"height"`
		AvgFrameRate string            `json:"avg_frame_rate"`
		Tags         map[string]string `json:"tags"`
	} `json:"streams"`
}

func ffprobe(t *testing.T, path string) probeOut {
	t.Helper()
	b, err := exec.Command("ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var p probeOut
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func fault(t *testing.T, err error) media.ClipFault {
	t.Helper()
	var ce *media.ClipError
	if !errors.As(err, &ce) {
		t.Fatalf("want a clip fault, got %v", err)
	}
	return ce.Fault
}

func TestClipConvertsToPlayableMP4(t *testing.T) {
	c := clipTools(t, media.ClipSettings{})
	dir := t.TempDir()
	// 1080p at 60 fps with a location, as a phone records.
	src := makeClip(t, dir, "phone.mov", append(testsrc("1920x1080", "60", "1"),
		"-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
		"-metadata", "location=+40.7128-074.0060/", "-metadata", "make=Phone",
		"-metadata", "com.apple.quicktime.location.ISO6709=+40.7128-074.0060+010.000/")...)
	if b, _ := os.ReadFile(src); !bytes.Contains(b, []byte("+40.7128")) {
		t.Fatal("the test clip carries no location to remove")
	}
	out := t.TempDir()
	clip, err := c.Convert(context.Background(), src, out, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if clip.Width != 1280 || clip.Height != 720 {
		t.Errorf("size %dx%d, want 1280x720", clip.Width, clip.Height)
	}
	if clip.Duration < 900*time.Millisecond || clip.Duration > 1100*time.Millisecond {
		t.Errorf("duration %v, want about 1s", clip.Duration)
	}
	if !clip.HasAudio {
		t.Error("the tone was lost")
	}
	p := ffprobe(t, clip.Path)
	var video, audio bool
	for _, s := range p.Streams {
		switch s.CodecType {
		case "video":
			video = true
			if s.CodecName != "h264" || s.PixFmt != "yuv420p" {
				t.Errorf("video %s %s, want h264 yuv420p", s.CodecName, s.PixFmt)
			}
			if s.AvgFrameRate != "30/1" {
				t.Errorf("frame rate %s, want at most 30", s.AvgFrameRate)
			}
		case "audio":
			audio = true
			if s.CodecName != "aac" {
				t.Errorf("audio %s, want aac", s.CodecName)
			}
		}
	}
	if !video || !audio {
		t.Errorf("streams %+v", p.Streams)
	}
	data, err := os.ReadFile(clip.Path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte("+40.7128")) || bytes.Contains(data, []byte("Phone")) {
		t.Error("the location or the phone's make came through")
	}
	if _, ok := p.Format.Tags["location"]; ok {
		t.Errorf("tags %v", p.Format.Tags)
	}
	moov, mdat := bytes.Index(data, []byte("moov")), bytes.Index(data, []byte("mdat"))
	if moov < 0 || mdat < 0 || moov > mdat {
		t.Errorf("index at %d, data at %d: the index must come first to play while loading", moov, mdat)
	}
	if int64(len(data)) != clip.Size {
		t.Errorf("size %d, file %d", clip.Size, len(data))
	}
	if !bytes.HasPrefix(clip.Poster, []byte("\xff\xd8\xff")) {
		t.Error("the poster is not a JPEG")
	}
}

func TestClipPortraitAndWebMWithoutLength(t *testing.T) {
	c := clipTools(t, media.ClipSettings{})
	dir := t.TempDir()
	// A phone holds the camera upright: landscape frames with a rotation.
	flat := makeClip(t, dir, "flat.mp4", append(testsrc("640x360", "30", "1"), "-c:v", "libx264", "-preset", "ultrafast")...)
	upright := filepath.Join(dir, "upright.mp4")
	if b, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-i", flat, "-c", "copy", "-metadata:s:v", "rotate=90", upright).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, b)
	}
	clip, err := c.Convert(context.Background(), upright, t.TempDir(), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if clip.Width != 360 || clip.Height != 640 {
		t.Errorf("upright clip came out %dx%d, want 360x640 (turned, never enlarged)", clip.Width, clip.Height)
	}

	// A browser's recording is a WebM streamed as it was made: it says no length.
	cmd := exec.Command("ffmpeg", append(append([]string{"-nostdin", "-v", "error"}, testsrc("320x240", "30", "3")...),
		"-c:v", "libvpx", "-deadline", "realtime", "-c:a", "libopus", "-f", "webm", "pipe:1")...)
	webm, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "rec.webm")
	os.WriteFile(path, webm, 0o600)
	clip, err = c.Convert(context.Background(), path, t.TempDir(), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if clip.Duration < 2800*time.Millisecond || clip.Duration > 3200*time.Millisecond {
		t.Errorf("duration %v, want about 3s", clip.Duration)
	}
	// The same recording over a 2-second limit is found too long by converting it.
	_, err = c.Convert(context.Background(), path, t.TempDir(), time.Second)
	if f := fault(t, err); f != media.ClipTooLong {
		t.Errorf("fault %s, want %s", f, media.ClipTooLong)
	}
}

func TestClipRefusals(t *testing.T) {
	c := clipTools(t, media.ClipSettings{MaxBytes: 5 << 20})
	dir := t.TempDir()
	tooLong := makeClip(t, dir, "long.mp4", append(testsrc("160x120", "10", "4"), "-c:v", "libx264", "-preset", "ultrafast")...)
	audioOnly := makeClip(t, dir, "voice.m4a", "-f", "lavfi", "-i", "sine=duration=2", "-c:a", "aac")
	good := makeClip(t, dir, "good.mp4", append(testsrc("320x240", "30", "3"), "-c:v", "libx264", "-preset", "ultrafast", "-movflags", "+faststart")...)
	data, _ := os.ReadFile(good)
	truncated := filepath.Join(dir, "cut.mp4")
	os.WriteFile(truncated, data[:len(data)/2], 0o600)
	text := filepath.Join(dir, "notes.mp4")
	os.WriteFile(text, []byte("Dear José, this is not a video.\n"), 0o600)
	wide := makeClip(t, dir, "wide.mp4", "-f", "lavfi", "-i", "color=size=5000x64:duration=0.2", "-c:v", "libx264", "-preset", "ultrafast")
	fast := makeClip(t, dir, "fast.mp4", "-f", "lavfi", "-i", "testsrc=size=64x64:rate=300:duration=0.2", "-c:v", "libx264", "-preset", "ultrafast")
	big := filepath.Join(dir, "big.mp4")
	os.WriteFile(big, append(data[:32:32], make([]byte, 6<<20)...), 0o600)

	for _, tc := range []struct {
		name, path string
		want       media.ClipFault
	}{
		{"longer than the limit and its grace", tooLong, media.ClipTooLong},
		{"sound without pictures", audioOnly, media.NotAVideo},
		{"cut short", truncated, media.ClipUnreadable},
		{"a text file named .mp4", text, media.NotAVideo},
		{"wider than 4K", wide, media.ClipUnsupported},
		{"300 frames a second", fast, media.ClipUnsupported},
		{"larger than the size limit", big, media.ClipTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			_, err := c.Convert(context.Background(), tc.path, out, 2*time.Second)
			if f := fault(t, err); f != tc.want {
				t.Errorf("fault %s (%v), want %s", f, err, tc.want)
			}
			if left, _ := os.ReadDir(out); len(left) != 0 {
				t.Errorf("left behind %v", left)
			}
		})
	}
}

// TestClipReadsOnlyTheUpload is the classic exploit: a playlist named .mp4 makes a
// careless ffmpeg read other files (here a FIFO, which tells if anyone opens it).
func TestClipReadsOnlyTheUpload(t *testing.T) {
	c := clipTools(t, media.ClipSettings{})
	dir := t.TempDir()
	// ".ts": a segment name ffmpeg's HLS reader takes (it refuses other endings).
	canary := filepath.Join(dir, "canary.ts")
	if err := syscall.Mkfifo(canary, 0o600); err != nil {
		t.Fatal(err)
	}
	opened := make(chan bool, 1)
	go func() {
		// Blocks until a reader opens the FIFO: either ffmpeg, or the test at its end.
		f, err := os.OpenFile(canary, os.O_WRONLY, 0)
		if err == nil {
			f.Close()
		}
		opened <- true
	}()
	playlist := "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\nfile://" + canary + "\n#EXTINF:10.0,\n" + canary + "\n#EXT-X-ENDLIST\n"
	concat := "ffconcat version 1.0\nfile '" + canary + "'\n"
	// The same playlist behind an MP4's first box, to pass a careless sniff.
	boxed := "\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + playlist
	for name, content := range map[string]string{"hls.mp4": playlist, "list.mp4": concat, "boxed.mp4": boxed, "hls.webm": playlist} {
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte(content), 0o600)
		_, err := c.Convert(context.Background(), path, t.TempDir(), 30*time.Second)
		if f := fault(t, err); f != media.NotAVideo && f != media.ClipUnreadable {
			t.Errorf("%s: fault %s", name, f)
		}
		select {
		case <-opened:
			t.Fatalf("%s: ffmpeg opened a file the upload named", name)
		default:
		}
	}
	// Release the writer: this open is the first reader.
	if f, err := os.OpenFile(canary, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
		<-opened
		f.Close()
	}
}

func TestSniffClip(t *testing.T) {
	for head, want := range map[string]string{
		"\x1a\x45\xdf\xa3\x9f\x42\x86\x81": "matroska",
		"\x00\x00\x00\x20ftypmp42\x00\x00": "mov",
		"\x00\x00\x00\x08wide\x00\x00\x00": "mov",
		"#EXTM3U\n#EXT-X-VERSION:3\n":      "",
		"GIF89a\x01\x00\x01\x00\x00\x00":   "",
		"":                                 "",
	} {
		got, err := media.SniffClip([]byte(head))
		if got != want || (want == "") != (err != nil) {
			t.Errorf("SniffClip(%q) = %q, %v; want %q", head, got, err, want)
		}
	}
	if _, err := media.SniffClip([]byte("ffconcat version 1.0\n")); err == nil || !strings.Contains(err.Error(), string(media.NotAVideo)) {
		t.Errorf("a concat list: %v", err)
	}
}
