"""The Isometric-Autoencoder defence and its evaluation (notebook 07)."""
