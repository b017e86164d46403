"""The benchmarks: ``python -m benchmarks.run`` runs every ``bench_*.py`` here (see README.md)."""
