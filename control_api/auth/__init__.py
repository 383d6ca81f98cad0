"""Accounts and access: users and passwords, JWTs, the guards of the other endpoints, admin accounts."""
