"""Continuous training: a drift alarm or a schedule starts one retraining run of a model."""
