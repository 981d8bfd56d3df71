"""Benchmarks (`latentlive bench`): ratios measured in one run, written as JSON."""
