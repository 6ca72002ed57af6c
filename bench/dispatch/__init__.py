"""Dispatch throughput and claim latency; see __main__.py."""
