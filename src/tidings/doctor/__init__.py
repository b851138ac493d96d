"""``tidings doctor``: what a sender must have right, checked line by line."""
