"""The audience: subscribers, subscriptions, import and export, suppressions."""
