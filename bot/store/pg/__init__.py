"""PostgreSQL beside the file store (issue 17, under way): the schema, its migrations and the roles' rights.

What is here so far: `schema` (run the numbered `migrations/NNN_*.sql` under an advisory lock, the schema
version, what the app's role may do to the audit table), `audit` (the audit log, its purge included), `leader`
(which replica runs the periodic work) and `leases` (work in flight). The records themselves still live in the
data dir's files; the store seam moves them here kind by kind.
"""
