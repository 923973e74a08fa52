"""localaws."""
