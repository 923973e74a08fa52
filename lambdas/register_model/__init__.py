"""Registers a gated model as a PendingManualApproval version in the Model Registry."""
