"""Records how a training run ended (runs table) and notifies (SNS)."""
