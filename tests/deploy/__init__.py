"""Deployment tests: compose structure, container config and scripts (no Docker engine needed)."""
