"""Collected runs, statistics, figures and tables of the paper from a user's own runs."""
