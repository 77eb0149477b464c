-- The comparison sheets of command-line examiner reviews (bot.store.probes.SheetCache; CONTRACTS ### 13): the CLI
-- makes the sheet where the photo is, and the server, maybe on another machine, posts it at its next tick and
-- deletes it. Never posted (the review cancelled, a server down): purged with the cached probes.
CREATE TABLE comparison_sheets (
    request_id text PRIMARY KEY,
    data       bytea NOT NULL,
    stored_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX comparison_sheets_stored_at ON comparison_sheets (stored_at);

REVOKE ALL ON comparison_sheets FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON comparison_sheets TO frbot_app;
