"""Benchmarks run by hand (`python -m bench.<name>`): the pipeline and the read side."""
