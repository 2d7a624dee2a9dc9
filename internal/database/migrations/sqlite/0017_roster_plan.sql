-- A kept roster upload remembers the changes its dry run showed, as a hash, so that
-- applying it later refuses when the residents changed meanwhile (another file was
-- applied): the person applying it must see what it will do now.
ALTER TABLE roster_uploads ADD COLUMN plan_hash TEXT NOT NULL DEFAULT '';
