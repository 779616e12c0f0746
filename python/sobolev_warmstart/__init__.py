"""Learned warm starts for trajectory optimisation (policy side; the core adds its own names at merge)."""
