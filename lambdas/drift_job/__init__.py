"""The scheduled drift job: PSI of each served model's champion over the last window of logs."""
