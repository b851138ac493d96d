"""Ingestion: fetch feeds, parse them, sanitise the items and upsert them as articles."""
