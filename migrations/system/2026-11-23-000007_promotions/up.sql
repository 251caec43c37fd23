-- Promotions: every changeset applied to a workspace (a sandbox promoted
-- to production, a changeset file applied, a promotion reverted), with
-- what each change did, so it can be listed and undone.
-- Runs with search_path = crm_system.
CREATE TABLE promotion (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- The workspace that changed: `production` or a sandbox's name.
    workspace          text NOT NULL,
    kind               text NOT NULL CHECK (kind IN ('SANDBOX', 'CHANGESET', 'REVERT')),
    -- The sandbox promoted, the changeset file's name, or the promotion reverted.
    source             text NOT NULL,
    status             text NOT NULL DEFAULT 'APPLIED' CHECK (status IN ('APPLIED', 'REVERTED')),
    at                 timestamptz NOT NULL DEFAULT now(),
    actor_id           uuid REFERENCES users (id),
    version_before     integer NOT NULL,
    version_after      integer NOT NULL,
    -- The changes as applied: [{kind, target, id, before, after, …}], where
    -- `before` is the workspace's item before and `after` after: reverting
    -- applies them the other way round.
    changes            jsonb NOT NULL,
    -- The GraphQL schema's changes: [{level, path, message}].
    sdl                jsonb NOT NULL,
    revert_of          uuid REFERENCES promotion (id),
    reverted_at        timestamptz,
    reverted_by        uuid REFERENCES users (id),
    reverted_in        uuid REFERENCES promotion (id)
);
CREATE INDEX promotion_at_idx ON promotion (at DESC, id);
