-- Who may read a log row: internal (staff only; every row written before
-- this migration) or public (the case's customer too). Only comments are
-- ever public.
ALTER TABLE item_log ADD COLUMN visibility TEXT NOT NULL DEFAULT 'internal'
    CHECK (visibility IN ('internal', 'public'));
