-- The Slack side and the small records (issue 17): what every replica must see the same way.

-- The dispatch channel's call-number index (bot.store.calls.CallIndexStore).
CREATE TABLE call_index (
    call_number text PRIMARY KEY,
    thread_ts   text NOT NULL,
    first_seen  text NOT NULL,
    source      text NOT NULL DEFAULT ''
);

-- Posts waiting for Slack, oldest first by id. `doc` is the queued post as the caller gave it (its message
-- carries `metadata.event_payload.post_id`); `dest` is where it goes (one call's thread, or one request thread),
-- so a claim never hands out a post while an earlier one to the same place is held by someone else. A post in
-- flight holds a lease (`lease_until`, `leased_by`); a lapsed lease may be claimed again.
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    post_id     text NOT NULL UNIQUE,
    dest        text NOT NULL,
    doc         jsonb NOT NULL,
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text,
    queued_at   timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz,
    leased_by   text
);
CREATE INDEX outbox_dest ON outbox (dest, id);

-- Signed requests already handled (bot.store.replays): a replay is acked, not applied, on any replica.
CREATE TABLE replay_claims (
    key text PRIMARY KEY,
    at  timestamptz NOT NULL
);
CREATE INDEX replay_claims_at ON replay_claims (at);

-- Per request, the probe analysis (bot.store.probes): the same npz bytes the file holds.
CREATE TABLE probe_cache (
    request_id text PRIMARY KEY,
    data       bytea NOT NULL,
    stored_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX probe_cache_stored_at ON probe_cache (stored_at);

-- Small records, one JSON document per (namespace, key): the pending refusal windows, reencode progress.
CREATE TABLE small_records (
    namespace  text NOT NULL,
    key        text NOT NULL,
    doc        jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, key)
);

REVOKE ALL ON call_index, outbox, replay_claims, probe_cache, small_records FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON call_index, outbox, replay_claims, probe_cache, small_records TO frbot_app;
GRANT USAGE, SELECT ON SEQUENCE outbox_id_seq TO frbot_app;
