"""Accounts and access: users and passwords, changing accounts and revoking their tokens, JWTs, the guards of
the other endpoints, admin accounts."""
