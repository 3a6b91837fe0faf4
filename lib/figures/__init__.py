"""Figures of the notebooks (matplotlib): they draw what the studies compute. Imports any package; only notebooks import
it."""
