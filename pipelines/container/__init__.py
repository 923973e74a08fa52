"""Code the platform runs inside SageMaker containers, next to a bundle's scripts."""

# Where a processing job's code input is mounted, and the name the launcher is staged under.
CODE_DIR = "/opt/ml/processing/input/code"
LAUNCHER = "_mlops_launch.py"
