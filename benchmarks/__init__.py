"""Benchmarks that print figures; none asserts a time."""
