"""The platform health monitor: probes (here), later fusion and agents."""
