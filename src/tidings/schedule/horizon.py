"""How far ahead the coming sends are listed: plain values, importable without the
scheduler's machinery (the command line shows them in its --help)."""

#: Days listed when none are asked for.
DAYS_DEFAULT = 7
#: The most days one listing covers.
DAYS_AT_MOST = 62
