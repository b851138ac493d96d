"""The web face (FastAPI): public subscriber pages and the mailbox of the built-in catcher."""
