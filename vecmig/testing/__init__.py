"""Helpers for testing vecmig (and projects using it) against real stores."""
