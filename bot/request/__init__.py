"""The request: an officer's search request as a dialog in its Slack thread — its data (dialog.py) and its
pure transitions (transitions.py), stored by bot.store.dialogs — and who a command-line requester is
(identity.py: the person behind a shared OS account)."""
