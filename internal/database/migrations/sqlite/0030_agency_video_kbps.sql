-- The most video a side of a visit sends at an agency's facilities, in kbit/s
-- (issue 15: "an agency bitrate cap"); 0 leaves it to the server's setting
-- (KINLINK_VIDEO_KBPS, 1500 by default).
ALTER TABLE agencies ADD COLUMN video_kbps INTEGER NOT NULL DEFAULT 0 CHECK (video_kbps = 0 OR video_kbps BETWEEN 100 AND 8000);
