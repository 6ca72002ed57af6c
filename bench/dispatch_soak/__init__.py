"""Crash soak: the crash test of tests/dispatch/test_crash.py with thousands of trials."""
