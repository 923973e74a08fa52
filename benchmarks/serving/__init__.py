"""Serving benchmarks: the model proxy against a framework ceiling, BentoML and `feast serve`,
in-process overhead and the Lambda handler's cold and warm paths (`python -m
benchmarks.serving.compare`)."""
