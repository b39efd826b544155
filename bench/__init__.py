"""Benchmarks run by ``make bench``; every figure is a median over repeated runs."""
