"""Every advisory-lock key the bot takes on its database, in one place so no two can ever be the same number
(two features sharing one key would wait on each other: the leader holds its key for as long as it leads).
Any fixed numbers no other program on the database uses; 37501 is the general order's number."""
from __future__ import annotations

MIGRATE = 37501_0017  # schema.migrate and store copy (transaction lock)
AUDIT_APPEND = 37501_0018  # one audit append or purge at a time (transaction lock)
OUTBOX_CLAIM = 37501_0019  # outbox claims keep a thread's posts in order (transaction lock)
LEADER = 37501_0021  # the replica that runs the periodic work (session lock, on its own connection)
REENCODE_RUN = 37501_0020  # one `gallery reencode` at a time (session lock)
GALLERY_WRITE = 37501_1713  # one gallery change at a time (transaction lock)

ALL = {"MIGRATE": MIGRATE, "AUDIT_APPEND": AUDIT_APPEND, "OUTBOX_CLAIM": OUTBOX_CLAIM, "LEADER": LEADER,
       "REENCODE_RUN": REENCODE_RUN, "GALLERY_WRITE": GALLERY_WRITE}
