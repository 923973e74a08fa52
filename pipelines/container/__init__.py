"""Code the platform runs inside SageMaker containers, next to a bundle's scripts."""
