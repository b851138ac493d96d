"""The admin console (/admin): sign-in, dashboard, subscribers, newsletters and editions."""
