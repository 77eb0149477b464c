"""Second-person controls (GO 375.01 A.3, B.3), pure state machines: an examiner's review of a search's
candidates (examination.py) and a supervisor's approval of a command-line request (approval.py). Stored by
bot.store.records."""
