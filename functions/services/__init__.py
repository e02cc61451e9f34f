"""Use cases: each takes its ports (registry, stores) as arguments."""
