"""The sample publication shipped with Tidings: a feed of fictional articles and subscribers."""
