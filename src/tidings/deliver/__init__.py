"""Delivery: the send ledger, the SMTP transport and pool, the retry policy, the worker."""
