"""Admin registrations for AIOps models (every model gets one)."""
