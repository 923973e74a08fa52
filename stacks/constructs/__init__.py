"""stacks/constructs."""
