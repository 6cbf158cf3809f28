"""Benchmarks of Orthanc patient access: `python -m bench.run` from the
repository's root. Every script here runs as a module (`python -m bench.<name>`):
they import each other as `bench.*` and the tests' helpers as `tests.*`."""
