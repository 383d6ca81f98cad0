"""User management for admins: list and read accounts, disable and enable, promote and demote, delete."""
