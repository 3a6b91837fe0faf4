"""Decision-boundary curvature (notebook 06)."""
