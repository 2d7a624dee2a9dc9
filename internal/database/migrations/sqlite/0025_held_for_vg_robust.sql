-- Version 25 belongs to the vg-robust branch. This file does nothing: it only keeps
-- the numbering of this branch whole (migrations must be numbered 1, 2, 3...) so
-- that 0026 applies before that branch lands. When merging, drop this file for that
-- branch's 0025; two files of version 25 stop every start (database.Migrations).
SELECT 1;
