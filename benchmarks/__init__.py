"""Throughput and memory benchmarks: the tap beside a bare baseline in the same run."""
