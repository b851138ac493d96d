"""Composing editions: select articles, render the templates once, inline CSS once, and make
each subscriber's message with a cheap substitution."""
