"""Sidestep keeps a brand's or a creator's audience reachable when a social platform goes down."""

__version__ = "0.1.0"
