"""The LocalStack adaptation of the `local` cloud assembly: what holds on every tier."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from mlops.localstack.adapt import Options, adapt_assembly
from mlops.localstack.tiers import SERVICES, Tier, minimum_tier, service_of
from tests.unit import localstack_templates as lt
from tests.unit.localstack_templates import Synth

pytestmark = pytest.mark.unit


# -- every tier ------------------------------------------------------------------------------


@pytest.mark.parametrize("tier", list(Tier))
def test_no_resource_of_a_service_the_tier_lacks_is_kept(
    synthesized: Synth, tmp_path: Path, tier: Tier
) -> None:
    report = lt.adapt(synthesized, tmp_path / "out", tier)
    assert len(report.stacks) == len(lt.stacks(synthesized("local").outdir)) == 7
    for stack in report.stacks:
        for lid, resource in lt.template(tmp_path / "out", stack)["Resources"].items():
            assert service_of(resource["Type"]) in SERVICES[tier], f"{stack}/{lid}"


@pytest.mark.parametrize("tier", list(Tier))
def test_exactly_the_reported_resources_are_removed(
    synthesized: Synth, tmp_path: Path, tier: Tier
) -> None:
    source = synthesized("local").outdir
    report = lt.adapt(synthesized, tmp_path / "out", tier)
    removed = lt.removed_by_report(report, tier)
    for stack in report.stacks:
        before = lt.template(source, stack)["Resources"]
        after = lt.template(tmp_path / "out", stack)["Resources"]
        reported = {lid for name, lid in removed if name == stack}
        lacking = {lid for lid, r in before.items() if service_of(r["Type"]) not in SERVICES[tier]}
        assert reported == lacking, stack  # nothing left out silently, nothing extra reported
        assert not reported & set(after), stack
        assert set(after) == set(before) - reported, stack
    for change in report.left_out():
        tier_needed = minimum_tier(service_of(change.resource_type))
        assert tier_needed is not None and tier_needed.value in change.detail


@pytest.mark.parametrize("tier", list(Tier))
def test_no_resource_attribute_references_a_removed_resource(
    synthesized: Synth, tmp_path: Path, tier: Tier
) -> None:
    report = lt.adapt(synthesized, tmp_path / "out", tier)
    missing = {
        stack: lt.missing_targets(lt.template(tmp_path / "out", stack)) for stack in report.stacks
    }
    assert {stack: found for stack, found in missing.items() if found} == {}


@pytest.mark.parametrize("tier", list(Tier))
def test_depends_on_names_only_resources_that_remain(
    synthesized: Synth, tmp_path: Path, tier: Tier
) -> None:
    report = lt.adapt(synthesized, tmp_path / "out", tier)
    for stack in report.stacks:
        resources = lt.template(tmp_path / "out", stack)["Resources"]
        for lid, resource in resources.items():
            if "DependsOn" not in resource:
                continue
            depends = resource["DependsOn"]
            depends = [depends] if isinstance(depends, str) else depends
            assert depends, f"{stack}/{lid} has an empty DependsOn"
            assert set(depends) <= set(resources), f"{stack}/{lid}"


def test_depends_on_a_left_out_resource_is_dropped_and_the_rest_kept(
    synthesized: Synth, tmp_path: Path
) -> None:
    """No synthesized resource kept at a tier depends on a removed one, so one is made to."""
    source = tmp_path / "source"
    shutil.copytree(synthesized("local").outdir, source)
    stack = lt.stack_name(synthesized, "feature-store")
    path = source / lt.stacks(source)[stack]["properties"]["templateFile"]
    template = json.loads(path.read_text())
    resources = template["Resources"]
    group = next(iter(lt.of_type(template, "AWS::ElastiCache::ReplicationGroup")))
    database = next(iter(lt.of_type(template, "AWS::Glue::Database")))
    queue = next(iter(lt.of_type(template, "AWS::SQS::Queue")))
    first, second = list(lt.of_type(template, "AWS::CloudWatch::Alarm"))[:2]
    resources[first]["DependsOn"] = [group, queue]
    resources[second]["DependsOn"] = database
    path.write_text(json.dumps(template, indent=1))

    adapt_assembly(source, tmp_path / "out", Options(tier=Tier.HOBBY))
    adapted = lt.template(tmp_path / "out", stack)["Resources"]
    assert adapted[first]["DependsOn"] == [queue]
    assert "DependsOn" not in adapted[second]


@pytest.mark.parametrize("tier", list(Tier))
def test_the_source_assembly_is_not_modified(
    synthesized: Synth, tmp_path: Path, tier: Tier
) -> None:
    source = synthesized("local").outdir
    before = {p: p.read_bytes() for p in source.rglob("*") if p.is_file()}
    lt.adapt(synthesized, tmp_path / "out", tier)
    assert {p: p.read_bytes() for p in source.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("tier", list(Tier))
def test_each_adapted_template_is_published_under_its_own_hash(
    synthesized: Synth, tmp_path: Path, tier: Tier
) -> None:
    source = synthesized("local").outdir
    target = tmp_path / "out"
    report = lt.adapt(synthesized, target, tier)
    manifest = json.loads((target / "manifest.json").read_text())
    for stack in report.stacks:
        props = manifest["artifacts"][stack]["properties"]
        old = hashlib.sha256((source / props["templateFile"]).read_bytes()).hexdigest()
        new = hashlib.sha256((target / props["templateFile"]).read_bytes()).hexdigest()
        assert props["stackTemplateAssetObjectUrl"].endswith(f"/{new}.json"), stack
        assets_name = next(d for d in props["additionalDependencies"] if d.endswith(".assets"))
        assets_path = target / manifest["artifacts"][assets_name]["properties"]["file"]
        files = json.loads(assets_path.read_text())["files"]
        assert files[new]["source"] == {"path": props["templateFile"], "packaging": "file"}
        keys = {d["objectKey"] for d in files[new]["destinations"].values()}
        assert keys == {f"{new}.json"}, stack
        if old != new:
            assert old not in assets_path.read_text(), stack
            assert old not in (target / "manifest.json").read_text(), stack


# -- options and report ------------------------------------------------------------------------


def test_a_directory_that_is_no_assembly_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        adapt_assembly(tmp_path / "empty", tmp_path / "out", Options(tier=Tier.HOBBY))


def test_the_alias_canary_policy_goes_with_the_codedeploy_group(
    synthesized: Synth, tmp_path: Path
) -> None:
    serving = lt.stack_name(synthesized, "serving")
    report = lt.adapt(synthesized, tmp_path / "out", Tier.HOBBY)
    aliases = {
        lid: res
        for lid, res in lt.template(tmp_path / "out", serving)["Resources"].items()
        if res["Type"] == "AWS::Lambda::Alias"
    }
    assert aliases and all("UpdatePolicy" not in res for res in aliases.values())
    dropped = [c for c in report.changes if "CodeDeployLambdaAliasUpdate dropped" in c.detail]
    assert [c.logical_id for c in dropped] == list(aliases)
    kept = lt.adapt(synthesized, tmp_path / "ultimate", Tier.ULTIMATE)
    assert not [c for c in kept.changes if "UpdatePolicy" in c.detail]


def test_a_sub_variable_map_is_rewritten_too(synthesized: Synth, tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(synthesized("local").outdir, source)
    registry = lt.stack_name(synthesized, "registry")
    path = source / lt.stacks(source)[registry]["properties"]["templateFile"]
    template = json.loads(path.read_text())
    group = next(
        lid for lid, res in template["Resources"].items()
        if res["Type"] == "AWS::SageMaker::ModelPackageGroup"
    )  # fmt: skip
    template["Outputs"]["Probe"] = {"Value": {"Fn::Sub": ["${G}/x", {"G": {"Ref": group}}]}}
    path.write_text(json.dumps(template))
    adapt_assembly(source, tmp_path / "out", Options(tier=Tier.HOBBY))
    probe = lt.template(tmp_path / "out", registry)["Outputs"]["Probe"]["Value"]["Fn::Sub"]
    assert probe == ["${G}/x", {"G": f"left-out-{group.lower()}"}]


def test_a_previous_adaptation_in_the_target_is_replaced(
    synthesized: Synth, tmp_path: Path
) -> None:
    target = tmp_path / "out"
    first = lt.adapt(synthesized, target, Tier.CORE)
    (target / "stale.txt").write_text("from an earlier run")
    second = lt.adapt(synthesized, target, Tier.CORE)
    assert not (target / "stale.txt").exists()
    assert second == first


@pytest.mark.parametrize("tier", list(Tier))
def test_report_text_names_the_tier_and_lists_each_change(
    synthesized: Synth, tmp_path: Path, tier: Tier
) -> None:
    report = lt.adapt(synthesized, tmp_path / "out", tier)
    lines = report.text().splitlines()
    assert lines[0] == f"LocalStack tier {tier.value}: deploying {', '.join(report.stacks)}"
    listed = [f"  {change.line()}" for change in report.changes]
    assert lines[1:] == (listed or ["  every resource is created as synthesized"])
    for change in report.changes:
        line = change.line()
        assert line.startswith(change.action)
        assert f"{change.stack}/{change.logical_id} ({change.resource_type})" in line
