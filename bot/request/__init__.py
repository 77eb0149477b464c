"""The request: an officer's search request as a dialog in its Slack thread — its data (dialog.py) and its
pure transitions (transitions.py). Stored by bot.store.dialogs."""
