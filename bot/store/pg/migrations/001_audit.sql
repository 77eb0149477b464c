-- The audit log: append-only for the app's role. Each row keeps the exact bytes its MAC covers (`line`, the
-- file store's JSON line), so a copy verifies to the same chain head, plus indexed columns for the readers.
CREATE TABLE audit_entries (
    seq          bigint PRIMARY KEY CHECK (seq >= 1),
    prev         text NOT NULL,
    mac          text NOT NULL UNIQUE,
    line         bytea NOT NULL,
    kind         text NOT NULL,
    at           timestamptz NOT NULL,
    request_id   text,
    call_number  text,
    requester_id text
);
CREATE INDEX audit_entries_at ON audit_entries (at);
CREATE INDEX audit_entries_request ON audit_entries (request_id) WHERE request_id IS NOT NULL;
CREATE INDEX audit_entries_call ON audit_entries (call_number) WHERE call_number IS NOT NULL;
CREATE INDEX audit_entries_requester ON audit_entries (requester_id) WHERE requester_id IS NOT NULL;

-- Rows change only through frbot_purge_audit (below), which says so for its own transaction; anyone else's
-- UPDATE, DELETE or TRUNCATE is refused, the owner's included.
CREATE FUNCTION frbot_audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('frbot.purging', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION frbot_audit_refuse_change();
CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries
    FOR EACH STATEMENT EXECUTE FUNCTION frbot_audit_refuse_change();

-- The only way entries leave: older than `days`, never under the 365-day floor (CJIS Security Policy 5.4.7
-- keeps transaction logs at least a year). Runs with its owner's rights; returns how many entries went.
CREATE FUNCTION frbot_purge_audit(days integer) RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    gone bigint;
BEGIN
    IF days IS NULL OR days < 365 THEN
        RAISE EXCEPTION 'audit entries are kept at least 365 days (asked: % days)', days
            USING ERRCODE = 'check_violation';
    END IF;
    PERFORM set_config('frbot.purging', 'on', true);
    DELETE FROM public.audit_entries WHERE at < now() - make_interval(days => days);
    GET DIAGNOSTICS gone = ROW_COUNT;
    PERFORM set_config('frbot.purging', 'off', true);
    RETURN gone;
END $$;
REVOKE ALL ON FUNCTION frbot_purge_audit(integer) FROM PUBLIC;

-- frbot_app (made by the DBA, as frbot_owner is) reads and appends, and purges only through the function.
REVOKE ALL ON audit_entries FROM PUBLIC;
GRANT SELECT, INSERT ON audit_entries TO frbot_app;
GRANT EXECUTE ON FUNCTION frbot_purge_audit(integer) TO frbot_app;
