"""Benchmarks of Orthanc patient access (issue 7): `python bench/run.py`."""
