"""The audit record (GO 375.01 D), pure parts: what an entry holds (entries.py), the HMAC chain's line form and
check (chain.py), refused attempts folded into one entry per person per window (refusals.py). The file that
holds the log is bot.store.audit_log."""
