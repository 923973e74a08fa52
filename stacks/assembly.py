"""Synthesize one environment in-process, exactly as app.py does under the CDK CLI.

Used by the tests (with bundling skipped) and by the local engine (with host bundling),
so both build the very app `cdk synth` builds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops.config import read_cdk_context

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class SynthesizedEnvironment:
    """One environment of the real app, synthesized with cdk-nag applied."""

    name: str
    app: Any
    stacks: list[Any]
    outdir: Path

    def stack(self, suffix: str) -> Any:
        return next(s for s in self.stacks if s.stack_name.endswith(f"-{suffix}"))


def synthesize_environment(
    name: str, outdir: Path, *, bundling: bool = True, overrides: dict[str, Any] | None = None
) -> SynthesizedEnvironment:
    """Build the app for one environment into outdir (a cloud assembly)."""
    import aws_cdk as cdk

    from stacks.platform import build_environment

    context = read_cdk_context(REPO_ROOT / "cdk.json")
    context.update(overrides or {})
    context["env"] = name
    if not bundling:
        context["aws:cdk:bundling-stacks"] = []
    app = cdk.App(context=context, outdir=str(outdir))
    stacks = build_environment(app, context["platform"], name)
    app.synth()
    return SynthesizedEnvironment(name=name, app=app, stacks=stacks.all(), outdir=outdir)
