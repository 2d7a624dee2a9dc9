package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// A video visit is recorded as it was sent, without decoding: each side's camera
// as VP8 in IVF and microphone as Opus in Ogg, each file placed on the visit's
// timeline by its start. After the visit they are merged into one file staff can
// play anywhere: H.264 and AAC in an MP4 with its index first, the two cameras
// side by side and the two voices mixed. The files are the server's own, but are
// read with the same care as an upload: each only as the container it must be
// (its first bytes checked), over the file protocol alone, under a time limit in
// proportion to the visit's length, at lower priority and a bounded number at once.

// Sizes of the merged picture: each side in a box of this size, the frame fitted
// inside it (never cropped), black around it and where a side sent no video.
const (
	visitSideWidth  = 640
	visitSideHeight = 360
	visitFPS        = 30
)

// VisitTrack is one recorded file and where it starts on the visit's timeline.
type VisitTrack struct {
	Path  string
	Start time.Duration
}

// VisitSide is one side of a visit: its camera (VP8 in IVF) and its microphone
// (Opus in Ogg); nil where it sent none.
type VisitSide struct {
	Video, Audio *VisitTrack
}

// VisitRecording is what MergeVisit merges: two sides, left and right, and the
// recording's length, which the merged file has (0: found from the files, each
// side's end at most).
type VisitRecording struct {
	Sides  [2]VisitSide
	Length time.Duration
}

// MergeVisit writes a visit's recording into out as one MP4 and returns its
// length as ffprobe reads it. A side missing entirely still gives a file (its half
// black and silent); a recording with no file at all is an error. It waits for a
// free slot first, giving up when ctx ends.
func (c *Clips) MergeVisit(ctx context.Context, rec VisitRecording, out string) (time.Duration, error) {
	var inputs []visitInput
	for side, s := range rec.Sides {
		for _, in := range []struct {
			t       *VisitTrack
			demuxer string
			magic   string
		}{{s.Video, "ivf", "DKIF"}, {s.Audio, "ogg", "OggS"}} {
			if in.t == nil {
				continue
			}
			if in.t.Start < 0 {
				return 0, fmt.Errorf("media: merge: %s starts before the recording", in.t.Path)
			}
			if err := sniffFile(in.t.Path, in.magic); err != nil {
				return 0, fmt.Errorf("media: merge: %w", err)
			}
			inputs = append(inputs, visitInput{side: side, demuxer: in.demuxer, track: *in.t})
		}
	}
	if len(inputs) == 0 {
		return 0, errors.New("media: merge: nothing was recorded")
	}
	if err := c.slots.Acquire(ctx, 1); err != nil {
		return 0, err
	}
	defer c.slots.Release(1)

	length := rec.Length
	if length <= 0 {
		for _, in := range inputs {
			p, err := c.probe(ctx, in.demuxer, in.track.Path)
			if err != nil {
				return 0, fmt.Errorf("media: merge: %s: %w", in.track.Path, err)
			}
			length = max(length, in.track.Start+p.duration)
		}
	}
	if length <= 0 {
		return 0, errors.New("media: merge: the recording has no length")
	}

	limit := transcodeLimit(length)
	runCtx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if _, stderr, err := c.run(runCtx, c.ffmpeg, mergeVisitArgs(inputs, length, out)); err != nil {
		os.Remove(out)
		switch {
		case errors.Is(runCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
			return 0, fmt.Errorf("media: merge: ffmpeg took longer than %v", limit)
		case ctx.Err() != nil:
			return 0, ctx.Err()
		}
		return 0, fmt.Errorf("media: merge: ffmpeg: %v: %s", err, firstLine(stderr))
	}
	got, err := c.probe(ctx, "mov", out)
	if err != nil {
		os.Remove(out)
		return 0, fmt.Errorf("media: merge: output: %w", err)
	}
	return got.duration, nil
}

// visitInput is one file given to ffmpeg.
type visitInput struct {
	side    int
	demuxer string // ivf or ogg, nothing else
	track   VisitTrack
}

// sniffFile checks that a file begins as its container must.
func sniffFile(path, magic string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, len(magic))
	if _, err := io.ReadFull(f, head); err != nil || !bytes.Equal(head, []byte(magic)) {
		return fmt.Errorf("%s is not the %s file it should be", path, magic)
	}
	return nil
}

// mergeVisitArgs are ffmpeg's arguments for merging a visit of the given length
// into out. Each side is a black box the length of the visit, with the side's
// video fitted in it from where it starts (holding its last picture through a
// gap); the boxes are stacked left and right. The sounds are delayed to where they
// start and mixed over silence the length of the visit, without lowering either.
func mergeVisitArgs(inputs []visitInput, length time.Duration, out string) []string {
	secs := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) }
	args := []string{"-nostdin", "-hide_banner", "-v", "error", "-y"}
	var graph []string
	box := strconv.Itoa(visitSideWidth) + "x" + strconv.Itoa(visitSideHeight)
	for side := range 2 {
		graph = append(graph, fmt.Sprintf("color=c=black:s=%s:r=%d:d=%s,setsar=1[bg%d]", box, visitFPS, secs(length), side))
	}
	sides := [2]string{"[bg0]", "[bg1]"}
	audios := []string{"[silence]"}
	graph = append(graph, "anullsrc=r=48000:cl=stereo,atrim=duration="+secs(length)+"[silence]")
	for i, in := range inputs {
		args = append(args, inputArgs(in.demuxer, in.track.Path)...)
		switch in.demuxer {
		case "ivf":
			graph = append(graph, fmt.Sprintf(
				"[%d:v]setpts=PTS-STARTPTS+%s/TB,scale=w=%d:h=%d:force_original_aspect_ratio=decrease:force_divisible_by=2,setsar=1[v%d]",
				i, secs(in.track.Start), visitSideWidth, visitSideHeight, i))
			graph = append(graph, fmt.Sprintf("%s[v%d]overlay=x=(W-w)/2:y=(H-h)/2:eof_action=pass[s%d]", sides[in.side], i, i))
			sides[in.side] = fmt.Sprintf("[s%d]", i)
		case "ogg":
			ms := strconv.FormatInt(in.track.Start.Milliseconds(), 10)
			graph = append(graph, fmt.Sprintf("[%d:a]aformat=sample_rates=48000:channel_layouts=stereo,adelay=delays=%s:all=1[a%d]", i, ms, i))
			audios = append(audios, fmt.Sprintf("[a%d]", i))
		}
	}
	graph = append(graph, sides[0]+sides[1]+"hstack=inputs=2,format=yuv420p[v]")
	graph = append(graph, fmt.Sprintf("%samix=inputs=%d:duration=first:normalize=0[a]", strings.Join(audios, ""), len(audios)))
	args = append(args,
		"-filter_complex", strings.Join(graph, ";"),
		"-map", "[v]", "-map", "[a]",
		"-map_metadata", "-1", "-map_chapters", "-1", "-sn", "-dn",
		"-t", secs(length),
		"-c:v", "libx264", "-preset", "veryfast", "-crf", "26", "-profile:v", "high",
		"-c:a", "aac", "-b:a", "96k", "-ac", "2",
		"-movflags", "+faststart", "-metadata:s", "handler_name=", "-f", "mp4", "file:"+out,
	)
	return args
}
