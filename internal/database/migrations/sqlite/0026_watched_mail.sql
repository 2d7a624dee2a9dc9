-- A family may ask for a mail the first time the resident plays a VideoGram they sent
-- (issue 14: "optional when it is watched"). Off unless they turn it on.
ALTER TABLE accounts ADD COLUMN email_when_videogram_watched BOOLEAN NOT NULL DEFAULT FALSE;
