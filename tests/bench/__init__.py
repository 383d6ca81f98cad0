"""Tests of the benchmark harness's own logic: history seeding, reports, README's Performance section."""
