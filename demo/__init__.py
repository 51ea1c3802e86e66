"""The walk-through demo: a real broker, central as its own process, simulated kiosks."""
