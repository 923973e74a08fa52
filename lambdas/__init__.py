"""lambdas."""
