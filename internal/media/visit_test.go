package media_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/media"
)

// recorded makes a file as the recorder writes them: VP8 in IVF or Opus in Ogg.
func recordedVideo(t *testing.T, dir, name, size, secs string) string {
	return makeClip(t, dir, name, "-f", "lavfi", "-i", "testsrc=size="+size+":rate=30:duration="+secs,
		"-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k", "-f", "ivf")
}

func recordedAudio(t *testing.T, dir, name, freq, secs string) string {
	return makeClip(t, dir, name, "-f", "lavfi", "-i", "sine=frequency="+freq+":duration="+secs,
		"-c:a", "libopus", "-b:a", "32k", "-f", "ogg")
}

// streams checks a merged visit: one H.264 video 1280x360 and one AAC audio, the
// index first, and its length.
func checkMerged(t *testing.T, path string, want, got time.Duration) {
	t.Helper()
	if d := got - want; d < -300*time.Millisecond || d > 300*time.Millisecond {
		t.Errorf("merged length %v, want %v", got, want)
	}
	p := ffprobe(t, path)
	var video, audio int
	for _, s := range p.Streams {
		switch s.CodecType {
		case "video":
			video++
			if s.CodecName != "h264" || s.Width != 1280 || s.Height != 360 || s.PixFmt != "yuv420p" {
				t.Errorf("video %s %dx%d %s, want h264 1280x360 yuv420p", s.CodecName, s.Width, s.Height, s.PixFmt)
			}
		case "audio":
			audio++
			if s.CodecName != "aac" {
				t.Errorf("audio %s, want aac", s.CodecName)
			}
		}
	}
	if video != 1 || audio != 1 {
		t.Errorf("%d video and %d audio streams, want one each", video, audio)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if moov, mdat := bytes.Index(data, []byte("moov")), bytes.Index(data, []byte("mdat")); moov < 0 || mdat < 0 || moov > mdat {
		t.Errorf("index at %d, data at %d: the index must come first", moov, mdat)
	}
}

// loudness is the mean volume (dB) of a file's sound between from and to seconds.
func loudness(t *testing.T, path string, from, to float64) float64 {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-nostdin", "-v", "info", "-ss", strconv.FormatFloat(from, 'f', 2, 64),
		"-to", strconv.FormatFloat(to, 'f', 2, 64), "-i", path, "-vn", "-af", "volumedetect", "-f", "null", "-").CombinedOutput()
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

func TestMergeVisitSideBySide(t *testing.T) {
	c := clipTools(t, media.ClipSettings{})
	dir := t.TempDir()
	// The family from the start, for 4 s; the resident 1.5 s later, for 3 s, in
	// portrait; the resident's sound only from 2 s.
	rec := media.VisitRecording{Sides: [2]media.VisitSide{
		{Video: &media.VisitTrack{Path: recordedVideo(t, dir, "f.ivf", "320x240", "4")},
			Audio: &media.VisitTrack{Path: recordedAudio(t, dir, "f.ogg", "440", "4")}},
		{Video: &media.VisitTrack{Path: recordedVideo(t, dir, "r.ivf", "180x320", "3"), Start: 1500 * time.Millisecond},
			Audio: &media.VisitTrack{Path: recordedAudio(t, dir, "r.ogg", "660", "2.5"), Start: 2 * time.Second}},
	}}
	out := filepath.Join(t.TempDir(), "visit.mp4")
	got, err := c.MergeVisit(context.Background(), rec, out)
	if err != nil {
		t.Fatal(err)
	}
	checkMerged(t, out, 4500*time.Millisecond, got)
	// Mixed, not averaged: two tones are louder than one.
	one, two := loudness(t, out, 0.5, 1.5), loudness(t, out, 2.5, 3.5)
	t.Logf("merged %v; one voice %.1f dB, two voices %.1f dB", got, one, two)
	if one < -30 || two < one+1.5 {
		t.Errorf("one voice %.1f dB, two voices %.1f dB", one, two)
	}
}

func TestMergeVisitWithOneSideMissing(t *testing.T) {
	c := clipTools(t, media.ClipSettings{})
	dir := t.TempDir()
	// Only the resident came, and their camera never sent: sound alone.
	rec := media.VisitRecording{Sides: [2]media.VisitSide{
		{},
		{Audio: &media.VisitTrack{Path: recordedAudio(t, dir, "r.ogg", "660", "2"), Start: 500 * time.Millisecond}},
	}}
	out := filepath.Join(t.TempDir(), "visit.mp4")
	got, err := c.MergeVisit(context.Background(), rec, out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("one side, sound alone: merged %v", got)
	checkMerged(t, out, 2500*time.Millisecond, got)
	if v := loudness(t, out, 0, 0.4); v > -60 {
		t.Errorf("sound before the resident spoke: %.1f dB", v)
	}

	// And a given length is the file's length.
	rec.Length = 3 * time.Second
	got, err = c.MergeVisit(context.Background(), rec, out)
	if err != nil {
		t.Fatal(err)
	}
	checkMerged(t, out, 3*time.Second, got)
}

func TestMergeVisitRefusesWhatIsNotARecording(t *testing.T) {
	c := clipTools(t, media.ClipSettings{})
	dir := t.TempDir()
	// A playlist where the camera's IVF should be: never handed to ffmpeg.
	playlist := filepath.Join(dir, "family-video.ivf")
	os.WriteFile(playlist, []byte("#EXTM3U\n#EXTINF:10.0,\nfile:///etc/passwd\n"), 0o600)
	ogg := recordedAudio(t, dir, "r.ogg", "660", "1")
	for name, rec := range map[string]media.VisitRecording{
		"a playlist as video":   {Sides: [2]media.VisitSide{{Video: &media.VisitTrack{Path: playlist}}}},
		"Ogg where IVF belongs": {Sides: [2]media.VisitSide{{Video: &media.VisitTrack{Path: ogg}}}},
		"nothing recorded":      {},
	} {
		out := filepath.Join(t.TempDir(), "visit.mp4")
		if _, err := c.MergeVisit(context.Background(), rec, out); err == nil {
			t.Errorf("%s: merged", name)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%s: left a file", name)
		}
	}
}
