-- Request dialogs, their dedupe claims, examiner reviews and CLI approvals (bot/store/pg/dialogs.py, records.py).
-- Each record is its core object's to_dict as `doc`, plus the columns its lookups need; `version` counts the
-- writes, and a transition writes only over the version it read (under SELECT ... FOR UPDATE), so two replicas
-- never both apply an input to one state. `added` keeps the order records were first stored, as the files do.
CREATE TABLE dialogs (
    dialog_id  text PRIMARY KEY,
    added      bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    channel    text NOT NULL,
    thread_ts  text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    terminal   boolean NOT NULL,
    version    integer NOT NULL DEFAULT 1,
    doc        jsonb NOT NULL
);
CREATE INDEX dialogs_thread ON dialogs (channel, thread_ts);
CREATE INDEX dialogs_active ON dialogs (created_at) WHERE NOT terminal;
CREATE INDEX dialogs_ended ON dialogs (updated_at) WHERE terminal;

-- A dialog's images (request id, Slack file id), rewritten with the dialog on every write: by_request_id and
-- by_file_id are index lookups.
CREATE TABLE dialog_images (
    dialog_id  text NOT NULL REFERENCES dialogs ON DELETE CASCADE,
    request_id text NOT NULL,
    file_id    text NOT NULL,
    PRIMARY KEY (dialog_id, request_id)
);
CREATE INDEX dialog_images_request ON dialog_images (request_id);
CREATE INDEX dialog_images_file ON dialog_images (file_id);

-- Event ids, file ids, action ids already handled: the first INSERT wins, on whichever replica.
CREATE TABLE dialog_claims (
    key text PRIMARY KEY,
    at  timestamptz NOT NULL
);
CREATE INDEX dialog_claims_at ON dialog_claims (at);

CREATE TABLE examinations (
    request_id text PRIMARY KEY,
    added      bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    open       boolean NOT NULL,
    ended_at   timestamptz,
    version    integer NOT NULL DEFAULT 1,
    doc        jsonb NOT NULL
);
CREATE INDEX examinations_open ON examinations (added) WHERE open;
CREATE INDEX examinations_ended ON examinations (ended_at) WHERE ended_at IS NOT NULL;

CREATE TABLE approvals (LIKE examinations INCLUDING ALL);

REVOKE ALL ON dialogs, dialog_images, dialog_claims, examinations, approvals FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON dialogs, dialog_images, dialog_claims, examinations, approvals TO frbot_app;
