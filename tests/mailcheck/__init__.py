"""Checkers nobody here wrote, run on the mails Tidings sends (issue 12).

``package.json`` pins the npm tools (``make mailcheck-tools`` installs them); ``checkers.py``
runs them, ``mails.py`` builds the mails they check, ``findings.py`` writes what they found.
"""
