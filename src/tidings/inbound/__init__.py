"""Mail that comes back (bounces, complaints, mailto unsubscribes) and provider webhook
events: read, classified, applied once, and kept."""
