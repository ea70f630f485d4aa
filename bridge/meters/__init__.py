"""Meter profiles."""
