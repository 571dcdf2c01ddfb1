"""Scoring and reports: scenario marks, results, evidence from the ledger, the score board."""
