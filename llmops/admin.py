"""Admin registrations for LLMOps models (every model gets one)."""
