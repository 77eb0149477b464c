"""PostgreSQL beside the file store (issue 17, under way): the schema, its migrations and the roles' rights.

What is here so far: `schema` (run the numbered `migrations/NNN_*.sql` under an advisory lock, the schema
version, what the app's role may do to the audit table), `audit` (the audit log), `dialogs` (request dialogs and
dedupe claims) and `records` (examiner reviews, CLI approvals), each with its file twin's calls. The server and
the CLI still open the data dir's files; the store seam moves them here kind by kind.
"""
