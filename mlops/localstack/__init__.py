"""Deploying the platform to LocalStack: tiers, template adaptation, Step Functions mocks.

The stacks are the ones `cdk synth -c env=local` builds. A LocalStack tier cannot create every
resource they hold, so :mod:`mlops.localstack.adapt` rewrites a copy of the cloud assembly for
one tier and reports every resource it left out or replaced; nothing is dropped silently.
"""
