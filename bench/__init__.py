"""Benchmarks of Orthanc patient access: `python bench/run.py`."""
