"""The training pipeline's model-side pieces: the sample model bundles and their data.

`pipelines.samples.<bundle>/` holds what a data scientist uploads (three scripts that follow the
SageMaker container contract, a manifest and a requirements file); `pipelines.sample_data`
generates the deterministic warehouse batch those bundles train on.
"""
