"""Contamination check: scored documents against a corpus, by hashed n-grams."""
