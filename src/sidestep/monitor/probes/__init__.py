"""One module per probe: `dns`, `http`, `statuspage`. Each returns `NewObservation` values."""
