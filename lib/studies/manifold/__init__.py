"""The discriminating claims on the attacks of notebooks 03-05 (claims) and their replication across trained models
(09)."""
