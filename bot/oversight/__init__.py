"""Oversight of the archive by command staff and auditors: audit queries, export and the discovery bundle
(review.py); the monthly report (monthly.py); sampled audits (samples.py); the public transparency report
(transparency.py); the whole-chain check evidence rests on (evidence.py, chain_check.py); retention
(retention.py)."""
