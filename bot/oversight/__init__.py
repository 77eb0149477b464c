"""Oversight of the archive by command staff and auditors: audit queries, export, the monthly report and the
discovery bundle (review.py); the whole-chain check evidence rests on (evidence.py); retention (retention.py)."""
