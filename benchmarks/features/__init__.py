"""Benchmarks of the feature store: materialization throughput and online read latency."""
