"""The request history: writing its rows with the hourly rollup, /history, and /stats computed from both."""
