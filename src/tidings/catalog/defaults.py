"""What a new newsletter has when its editor gives nothing: plain values, importable without
the catalog's machinery (the command line shows them in its --help)."""

#: Every day at seven in the newsletter's zone.
DEFAULT_SCHEDULE = "0 7 * * *"
