package visits_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/media"
	"github.com/kinlink/kinlink/internal/visits"
	"github.com/kinlink/kinlink/internal/visits/rtc"
	"github.com/kinlink/kinlink/internal/visits/rtc/rtctest"
)

// recordingSetup is the live world recording into a folder, its merges kept on
// disk; without ffmpeg the test skips (fails with KINLINK_MEDIA_TOOLS=require).
func recordingSetup(t *testing.T, db *database.DB) (*liveWorld, media.Disk, string) {
	t.Helper()
	clips, err := media.NewClips(media.ClipSettings{})
	if err != nil {
		if os.Getenv("KINLINK_MEDIA_TOOLS") == "require" {
			t.Fatalf("KINLINK_MEDIA_TOOLS=require, but %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
	w := liveSetup(t, db)
	blobs, work := media.Disk{Dir: t.TempDir()}, t.TempDir()
	if err := w.visits.UseRecordings(clips, blobs, work); err != nil {
		t.Fatal(err)
	}
	return w, blobs, work
}

// merges are the merge jobs queued, as their payloads.
func (w *liveWorld) merges(t *testing.T) []map[string]any {
	t.Helper()
	rows, err := w.db.Read().QueryContext(ctx, "SELECT payload FROM jobs WHERE kind = $1 ORDER BY id", visits.MergeJob)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []map[string]any
	for rows.Next() {
		var p string
		var m map[string]any
		if err := rows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(p), &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func TestAVisitIsRecordedAndPlayedBackOnlyToStaffWhoMay(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w, blobs, work := recordingSetup(t, db)
		media, stop := context.WithCancel(context.Background())
		defer stop()
		_, _, room := w.enter(t, media)
		rtctest.Eventually(t, "live", func() bool { return w.state(t).State == visits.Live })
		room.End("family", "hung_up")
		rtctest.Eventually(t, "a merge queued", func() bool { return len(w.merges(t)) == 1 })
		job := w.merges(t)[0]
		// Both sides' files (the synthetic video has no frames a recorder keeps: sound only).
		files, _ := job["files"].([]any)
		roles := map[any]bool{}
		for _, f := range files {
			roles[f.(map[string]any)["Role"]] = true
		}
		if job["visit_id"] != w.visit.ID || !roles["family"] || !roles["resident"] {
			t.Fatalf("merge job %v", job)
		}
		// The synthetic packets are no real VP8: the merge of this room is the
		// recorder's tests' to check (rtc, media). Here: where it is kept and who
		// plays it.
		raw, _ := json.Marshal(job)
		if err := w.visits.HandleMerge(ctx, raw); err == nil {
			// The sound merged (the synthetic video has no frames): kept under an id.
			var n int
			_ = db.Read().QueryRowContext(ctx, "SELECT COUNT(*) FROM visit_recordings WHERE visit_id = $1", w.visit.ID).Scan(&n)
			if n != 1 {
				t.Fatalf("%d recordings kept after the merge", n)
			}
			if _, err := db.Write().ExecContext(ctx, "DELETE FROM visit_recordings WHERE visit_id = $1", w.visit.ID); err != nil {
				t.Fatal(err)
			}
		}
		key := ids.New()
		if err := blobs.Put(ctx, key, []byte("a recording")); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Write().ExecContext(ctx, `INSERT INTO visit_recordings (visit_id, segment, blob_key, seconds, created_at)
			VALUES ($1, $2, $3, 20, $4) ON CONFLICT DO NOTHING`, w.visit.ID, job["segment"], key, time.Now().UTC()); err != nil {
			t.Fatal(err)
		}
		list, err := w.visits.Recordings(ctx, w.fspOfficer, w.visit.ID)
		if err != nil || len(list) != 1 {
			t.Fatalf("recordings: %v %v", list, err)
		}
		blob, err := w.visits.OpenRecording(ctx, w.fspOfficer, w.visit.ID, list[0].Segment)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(blob)
		blob.Close()
		if string(b) != "a recording" {
			t.Fatalf("played %q", b)
		}
		if _, err := w.visits.OpenRecording(ctx, w.fspOfficer, w.visit.ID, list[0].Segment); err != nil {
			t.Fatal(err)
		}
		if n := len(entries(t, w.world, w.fl.ID, "visit.recording.play")); n != 1 {
			t.Fatalf("%d playbacks audited for one viewing", n)
		}
		if _, err := w.visits.OpenRecording(ctx, w.gaAdmin, w.visit.ID, list[0].Segment); !errors.Is(err, visits.ErrNotFound) {
			t.Fatalf("another agency: %v", err)
		}
		if _, err := w.visits.Recordings(ctx, w.lciAdmin, w.visit.ID); !errors.Is(err, facility.ErrForbidden) {
			t.Fatalf("another facility's admin: %v", err)
		}
		// Past the agency's retention (365 days) the file goes; the row stays.
		w.runFrom(time.Now().AddDate(1, 0, 1))
		if n, err := w.visits.ExpireRecordings(ctx); err != nil || n != 1 {
			t.Fatalf("expired %d: %v", n, err)
		}
		if _, err := w.visits.OpenRecording(ctx, w.fspOfficer, w.visit.ID, list[0].Segment); !errors.Is(err, visits.ErrNotFound) {
			t.Fatalf("an expired recording: %v", err)
		}
		if list, _ := w.visits.Recordings(ctx, w.fspOfficer, w.visit.ID); len(list) != 1 || !list[0].Deleted {
			t.Fatalf("after expiry: %+v", list)
		}
		if n := len(entries(t, w.world, w.fl.ID, "visit.recording.delete")); n != 1 {
			t.Fatalf("%d deletions audited", n)
		}
		_ = work
	})
}

func TestAPrivilegedVisitIsNeverRecorded(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w, _, work := recordingSetup(t, db)
		if _, err := db.Write().ExecContext(ctx, "UPDATE visits SET privileged = TRUE WHERE id = $1", w.visit.ID); err != nil {
			t.Fatal(err)
		}
		media, stop := context.WithCancel(context.Background())
		defer stop()
		_, _, room := w.enter(t, media)
		rtctest.Eventually(t, "live", func() bool { return w.state(t).State == visits.Live })
		room.End("family", "hung_up")
		rtctest.Eventually(t, "completed", func() bool { return w.state(t).State == visits.Completed })
		if m := w.merges(t); len(m) != 0 {
			t.Fatalf("merges queued for a privileged visit: %v", m)
		}
		if entries, _ := os.ReadDir(filepath.Join(work, w.visit.ID)); len(entries) != 0 {
			t.Fatalf("files written for a privileged visit: %v", entries)
		}
		_ = rtc.Family
	})
}

// A server killed during a visit never closed its room: at the next start, the
// files that room wrote are merged all the same, once.
func TestRecordingsOfAKilledServerAreMergedAtStart(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w, _, _ := recordingSetup(t, db)
		media, stop := context.WithCancel(context.Background())
		defer stop()
		_, _, room := w.enter(t, media)
		room.End("family", "hung_up")
		rtctest.Eventually(t, "a merge queued", func() bool { return len(w.merges(t)) == 1 })
		segment := w.merges(t)[0]["segment"]
		// The server was killed before it queued the merge: no job, the files stay.
		if _, err := db.Write().ExecContext(ctx, "DELETE FROM jobs WHERE kind = $1", visits.MergeJob); err != nil {
			t.Fatal(err)
		}
		if n, err := w.visits.RecoverRecordings(ctx); err != nil || n != 1 {
			t.Fatalf("recovered %d: %v", n, err)
		}
		m := w.merges(t)
		files, _ := m[0]["files"].([]any)
		if len(m) != 1 || m[0]["segment"] != segment || len(files) < 2 {
			t.Fatalf("the recovered merge: %v", m)
		}
		if n, err := w.visits.RecoverRecordings(ctx); err != nil || n != 0 {
			t.Fatalf("recovered again: %d %v", n, err)
		}
	})
}
