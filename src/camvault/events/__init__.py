"""camvault."""
