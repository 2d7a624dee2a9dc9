package rtc

import (
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// A disk that does not keep up costs the recording packets, never the visit time:
// WriteRTP returns at once and counts what it could not queue.
func TestARecorderBehindASlowDiskDropsAndCounts(t *testing.T) {
	r, err := NewRecorder(RecorderConfig{Dir: t.TempDir(), Queue: 4})
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock() // the writer is stuck: a disk that does not answer
	start := time.Now()
	for i := range 100 {
		r.WriteRTP(Family, webrtc.RTPCodecTypeAudio, &rtp.Packet{Header: rtp.Header{SSRC: 1, SequenceNumber: uint16(i), Timestamp: uint32(i * 960)},
			Payload: []byte{0xf8, 0xff, 0xfe}})
	}
	took := time.Since(start)
	dropped := r.dropped.Load()
	r.mu.Unlock()
	r.Close()
	// The writer may hold one packet it took before it got stuck.
	if dropped < 95 || dropped > 96 {
		t.Errorf("dropped %d of 100 with room for 4", dropped)
	}
	if took > time.Second {
		t.Errorf("100 packets took %v to hand over", took)
	}
	rec := r.Recording()
	if rec.Dropped != dropped || len(rec.Files) != 1 || rec.Files[0].Packets+dropped != 100 {
		t.Errorf("recording %+v", rec)
	}
	// Packets after the end go nowhere.
	r.WriteRTP(Family, webrtc.RTPCodecTypeAudio, &rtp.Packet{Header: rtp.Header{SSRC: 1}, Payload: []byte{0xf8}})
	if got := r.Recording(); got.Dropped != dropped || got.Files[0].Packets != rec.Files[0].Packets {
		t.Errorf("a packet after Close was taken: %+v", got)
	}
}

// A sender that starts again on the same SSRC (sequence numbers and timestamps
// leap) is a new stream: placed at the time it arrived, not where its timestamps
// point, and the sound between is silence.
func TestARecorderPlacesALeapingStreamAtItsArrival(t *testing.T) {
	r, err := NewRecorder(RecorderConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	tr := r.tracks[1] // the family's audio
	packet := func(seq uint16, ts uint32) *rtp.Packet {
		return &rtp.Packet{Header: rtp.Header{SSRC: 7, SequenceNumber: seq, Timestamp: ts}, Payload: []byte{0xf8, 0xff, 0xfe}}
	}
	r.mu.Lock()
	for i := range 50 { // one second
		tr.push(packet(uint16(100+i), uint32(5000+i*960)), time.Duration(i)*20*time.Millisecond)
	}
	for i := range 50 { // two seconds later, from elsewhere on its clocks
		tr.push(packet(uint16(40000+i), uint32(9_000_000+i*960)), 3*time.Second+time.Duration(i)*20*time.Millisecond)
	}
	r.mu.Unlock()
	r.Close()
	f := r.Recording().Files[0]
	if f.Sources != 2 || f.Frames != 100 {
		t.Errorf("%d sources, %d frames", f.Sources, f.Frames)
	}
	// The first stream ends at 1 s, the second begins at 3 s: two seconds of silence.
	if f.Filled < 99 || f.Filled > 101 || f.End < 3980*time.Millisecond || f.End > 4020*time.Millisecond {
		t.Errorf("filled %d, end %v; want 100 silences and the end at 4 s", f.Filled, f.End)
	}
}

func TestOpusSamples(t *testing.T) {
	for _, tc := range []struct {
		packet []byte
		want   int64
	}{
		{[]byte{0xf8, 0xff, 0xfe}, 960}, // CELT 20 ms
		{[]byte{0x78}, 960},             // hybrid 20 ms
		{[]byte{0x08 | 0x01}, 2 * 960},  // SILK 20 ms, two frames
		{[]byte{0x18, 1, 2}, 2880},      // SILK 60 ms
		{[]byte{0xeb, 0x03}, 3 * 240},   // CELT 5 ms, three frames
		{[]byte{0x1b, 0x03}, 0},         // SILK 60 ms × 3: longer than 120 ms
		{[]byte{0x03}, 0},               // code 3 without its count
		{nil, 0},
	} {
		if got := opusSamples(tc.packet); got != tc.want {
			t.Errorf("opusSamples(% x) = %d, want %d", tc.packet, got, tc.want)
		}
	}
}
