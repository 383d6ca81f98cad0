"""Self-service for any signed-in user: their account, their own history and daily usage, changing their
password, deleting their account."""
