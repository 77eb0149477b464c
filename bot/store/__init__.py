"""Where records live: every file-backed store of the bot (the audit log and its read cache, request dialogs,
examiner reviews and approvals, cached probe faces) and the file helpers they share (disk.py). Domain packages
keep pure logic; a shared database will sit beside these files (issue 13)."""
