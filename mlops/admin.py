"""Admin registrations for MLOps models (every model gets one)."""
