"""DMM's claims about training: mislabelled and adversarial training (notebook 10)."""
