"""Where the inbound listener listens unless told: a plain value, importable without the
listener itself (the command line shows it in its --help)."""

#: ``tidings inbound serve`` listens here when neither --port nor TIDINGS_INBOUND_PORT says.
DEFAULT_PORT = 2526
