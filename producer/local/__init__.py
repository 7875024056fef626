"""The embedded local stack (real processes, no Docker), the demo and its sample photos."""
