"""End-to-end Slack tests: a local Slack Web API double and signed requests to the bot's own server."""
