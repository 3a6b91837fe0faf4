"""Known manifolds, where DMM can be built in (notebook 08)."""
