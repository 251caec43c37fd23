-- Forward-only: the old names could collide, so they are not brought back.
SELECT 1;
