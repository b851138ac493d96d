"""Scheduling: which slots are due, the single active scheduler, and the APScheduler jobs."""
