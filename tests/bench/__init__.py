"""Benchmarks (`make bench`): not collected by pytest, never a gate on time."""
