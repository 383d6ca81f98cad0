"""Tests of launcher/: starting and stopping real processes."""
