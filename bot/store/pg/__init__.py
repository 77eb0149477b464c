"""PostgreSQL beside the file store (issue 17, under way): the schema, its migrations and the roles' rights.

What is here so far: `schema` (run the numbered `migrations/NNN_*.sql` under an advisory lock, the schema
version, what the app's role may do to the audit table), `audit` (the audit log, its purge included), `dialogs`
(request dialogs and dedupe claims), `records` (examiner reviews, CLI approvals), `leader` (which replica runs
the periodic work), `leases` (work in flight) and `copy` (`store copy --to`), each store with its file twin's
calls. bot.store.backend decides which a data dir gets.
"""
