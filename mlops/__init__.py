"""mlops."""
