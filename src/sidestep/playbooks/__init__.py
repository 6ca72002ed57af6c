"""Playbooks: prepared plans bound to outage triggers, run by the engine, rehearsed in drills."""
