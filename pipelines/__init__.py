"""The training pipeline: its workflow definition, container-side code and sample bundles.

- `pipelines.workflow`: the Step Functions definition (one, for AWS and the local engine).
- `pipelines.container`: code the platform runs inside SageMaker containers (the
  processing-job launcher).
- `pipelines.samples.<bundle>/`: what a data scientist uploads (three scripts that follow
  the SageMaker container contract, a manifest and a requirements file).
- `pipelines.sample_data`: the deterministic warehouse batch the sample bundles train on.
"""
