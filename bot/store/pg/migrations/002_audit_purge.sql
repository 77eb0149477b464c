-- The audit purge with its anchor, and the leases of work in flight (issue 17).

-- 001's purge removed every old row and left no anchor: a chain that `verify` cannot start. It goes; entries
-- now leave only through frbot_purge_audit_through (below).
DROP FUNCTION frbot_purge_audit(integer);

-- The purge markers (anchors): the signed record of where the kept chain starts (the file log's first line after
-- a purge). Written only by frbot_purge_audit_through, in the transaction that removes the entries; readers start
-- the chain from the one with the highest purge_seq. Append-only for everyone, as the entries are.
CREATE TABLE audit_anchors (
    purge_seq  bigint PRIMARY KEY,
    anchor_seq bigint NOT NULL CHECK (anchor_seq >= 1),
    line       bytea NOT NULL,
    made_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER audit_anchors_append_only BEFORE UPDATE OR DELETE ON audit_anchors
    FOR EACH ROW EXECUTE FUNCTION frbot_audit_refuse_change();
CREATE TRIGGER audit_anchors_no_truncate BEFORE TRUNCATE ON audit_anchors
    FOR EACH STATEMENT EXECUTE FUNCTION frbot_audit_refuse_change();

-- The only way entries leave: the contiguous prefix through entry `through_seq`, when every entry in it was
-- recorded before `cutoff` and `cutoff` is at least 365 days ago (CJIS Security Policy 5.4.7), whatever the caller
-- asks. The caller (PgAuditLog.purge_before, holding the append lock) has already inserted the `purge` entry
-- recording the removal and passes the signed marker (`anchor`, the JSON line); both must name entry `through_seq`
-- and its mac. Runs with its owner's rights; returns how many entries went.
CREATE FUNCTION frbot_purge_audit_through(through_seq bigint, cutoff timestamptz, anchor bytea) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    floor_days constant integer := 365;
    first_seq bigint;
    through_mac text;
    marker jsonb;
    purge jsonb;
    gone bigint;
BEGIN
    IF cutoff IS NULL OR cutoff > now() - make_interval(days => floor_days) THEN
        RAISE EXCEPTION 'audit entries are kept at least % days (asked to remove entries before %)',
            floor_days, cutoff USING ERRCODE = 'check_violation';
    END IF;
    IF EXISTS (SELECT 1 FROM public.audit_entries e WHERE e.seq <= through_seq AND e.at >= cutoff) THEN
        RAISE EXCEPTION 'audit entries up to % are not all older than %', through_seq, cutoff
            USING ERRCODE = 'check_violation';
    END IF;
    SELECT min(e.seq) INTO first_seq FROM public.audit_entries e;
    SELECT e.mac INTO through_mac FROM public.audit_entries e WHERE e.seq = through_seq;
    IF through_mac IS NULL
            OR (SELECT count(*) FROM public.audit_entries e WHERE e.seq <= through_seq) <> through_seq - first_seq + 1
    THEN
        RAISE EXCEPTION 'no contiguous run of audit entries ends at %', through_seq;
    END IF;
    marker := convert_from(anchor, 'UTF8')::jsonb;
    IF marker->>'kind' IS DISTINCT FROM 'purge_anchor' OR marker->>'anchor_seq' IS DISTINCT FROM through_seq::text
            OR marker->>'anchor_mac' IS DISTINCT FROM through_mac THEN
        RAISE EXCEPTION 'the purge marker does not name audit entry % and its mac', through_seq;
    END IF;
    SELECT convert_from(e.line, 'UTF8')::jsonb INTO purge FROM public.audit_entries e
        WHERE e.seq::text = marker->>'purge_seq' AND e.kind = 'purge' AND e.seq > through_seq;
    IF purge IS NULL OR purge->>'through_seq' IS DISTINCT FROM through_seq::text
            OR purge->>'through_mac' IS DISTINCT FROM through_mac THEN
        RAISE EXCEPTION 'no purge entry records the removal through audit entry %', through_seq;
    END IF;
    PERFORM set_config('frbot.purging', 'on', true);
    DELETE FROM public.audit_entries e WHERE e.seq <= through_seq;
    GET DIAGNOSTICS gone = ROW_COUNT;
    PERFORM set_config('frbot.purging', 'off', true);
    INSERT INTO public.audit_anchors (purge_seq, anchor_seq, line) VALUES ((purge->>'seq')::bigint, through_seq, anchor);
    RETURN gone;
END $$;
REVOKE ALL ON FUNCTION frbot_purge_audit_through(bigint, timestamptz, bytea) FROM PUBLIC;

-- Work in flight (CONTRACTS ### 13): a 30 s lease per piece of work, renewed while it runs; the leader resumes
-- only the expired ones. Any replica takes, renews and releases; rows are plain state, not records.
CREATE TABLE work_leases (
    key        text PRIMARY KEY,
    holder     text NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX work_leases_expires_at ON work_leases (expires_at);

-- frbot_app reads the anchors (never writes them), purges only through the function, and keeps its leases.
REVOKE ALL ON audit_anchors, work_leases FROM PUBLIC;
GRANT SELECT ON audit_anchors TO frbot_app;
GRANT EXECUTE ON FUNCTION frbot_purge_audit_through(bigint, timestamptz, bytea) TO frbot_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON work_leases TO frbot_app;
