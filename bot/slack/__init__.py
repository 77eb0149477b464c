"""The Slack adapter: Web API client and file download (client.py), app wiring, listeners, Block Kit
messages and the call-thread log. The dialog, policy and audit logic live in the core, not here."""
