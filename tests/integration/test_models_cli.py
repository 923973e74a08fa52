"""The approvers' commands against the emulator: a registry of three credit-risk versions (v1
and v2 approved, v2 the champion, v3 pending), the ledger the approval hook wrote for them and
the champion pointer. Where a command waits, a thread plays the hook: it watches the package's
status and writes the ledger entries the hook would."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from lambdas.register_model.domain import GateSummary, Provenance, package_request
from localaws import sagemaker_registry
from localaws.emulator import Emulator, running_emulator
from mlops import models_cli
from mlops.cli import app
from mlops.deployments import (
    Action,
    Champion,
    ChampionPointer,
    Ledger,
    LedgerEntry,
    Outcome,
    VersionRef,
    entry_key,
)
from mlops.stack_outputs import StackOutputError

pytestmark = pytest.mark.integration
runner = CliRunner(env={"COLUMNS": "200"})
MODEL, TABLE, PREFIX = "credit-risk", "mlops-dev-ledger", "/mlops/dev/champions/"
AUC = {1: 0.80, 2: 0.83, 3: 0.845}
ALICE = {"IamIdentity": {"Arn": "arn:aws:sts::123456789012:assumed-role/Approver/alice"}}


@dataclass
class Registry:
    """What the tests set up: package ARNs by version, and the clients to inspect them."""

    arns: dict[int, str]
    sagemaker: Any
    ledger: Ledger
    pointer: ChampionPointer

    def package(self, version: int) -> dict[str, Any]:
        found: dict[str, Any] = self.sagemaker.describe_model_package(
            ModelPackageName=self.arns[version]
        )
        return found

    def state(self, version: int) -> tuple[Any, ...]:
        package = self.package(version)
        return tuple(package.get(k) for k in ("ModelApprovalStatus", "ApprovalDescription",
                                              "LastModifiedTime"))  # fmt: skip


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with running_emulator() as emu:
        sagemaker_registry.install()  # UpdateModelPackage keeps the metadata, as on AWS
        try:
            yield emu
        finally:
            sagemaker_registry.uninstall()


def _register(sagemaker: Any, version: int) -> str:
    run = f"credit-risk-2026110{version}-run{version}"
    champion = f"arn:aws:sagemaker:ap-northeast-2:123456789012:model-package/{MODEL}/{version - 1}"
    source = Provenance(
        run_id=run, model_name=MODEL, bundle_bucket="code",
        bundle_key=f"bundles/{MODEL}/v{version}.tar.gz", code_version=f"obj-v{version}",
        git_commit=f"{version}abc123", uploaded_by="bob",
        training_job_name=f"{run}-train",
    )  # fmt: skip
    gate = GateSummary(
        metric="auc", reason=f"auc {AUC[version]:.4f} passes the threshold 0.7000",
        champion_arn=champion if version > 1 else None,
        improvement=round(AUC[version] - AUC[version - 1], 4) if version > 1 else None,
        metrics={"auc": AUC[version], "ks": 0.4 + version / 100, "logloss": 0.5 - version / 100},
    )  # fmt: skip
    request = package_request(
        MODEL, source, gate, image="123456789012.dkr.ecr.ap-northeast-2.amazonaws.com/xgb:1",
        model_data_url=f"s3://artifacts/runs/{run}/model.tar.gz",
        report_uri=f"s3://artifacts/runs/{run}/evaluation/evaluation.json",
    )  # fmt: skip
    return str(sagemaker.create_model_package(**request)["ModelPackageArn"])


def _entry(arn: str, version: int, status: str, when: str, **fields: Any) -> LedgerEntry:
    return LedgerEntry(
        model=MODEL, entry=entry_key(when, f"{arn}|{status}|{when}"), package_arn=arn,
        version=version, status=status, action=fields.pop("action", Action.PROMOTE),
        outcome=fields.pop("outcome", Outcome.DEPLOYED), reason=fields.pop("reason", "promoted"),
        occurred_at=when, approver=ALICE, **fields,
    )  # fmt: skip


def _outputs(stack: str, key: str) -> str:
    if stack != "mlops-dev-registry":
        raise StackOutputError(f"cannot read stack {stack}: it does not exist")
    return {"LedgerTableName": TABLE, "ChampionParameterPrefix": PREFIX}[key]


@pytest.fixture
def registry(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Registry:
    reset = urllib.request.Request(f"{emulator.endpoint_url}/moto-api/reset", method="POST")
    urllib.request.urlopen(reset, timeout=10).close()  # noqa: S310 - loopback
    monkeypatch.setattr("mlops.stack_outputs.stack_output", _outputs)
    # Poll well within the stand-in hook's 0.3 s steps, so a waiting command sees every step.
    monkeypatch.setattr(models_cli, "POLL_SECONDS", 0.05)
    sagemaker = emulator.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName=MODEL)
    arns = {version: _register(sagemaker, version) for version in (1, 2, 3)}
    for version in (1, 2):
        sagemaker.update_model_package(
            ModelPackageArn=arns[version], ModelApprovalStatus="Approved",
            ApprovalDescription=f"v{version} looks good",
        )  # fmt: skip
    emulator.client("dynamodb").create_table(
        TableName=TABLE, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "model", "KeyType": "HASH"},
                   {"AttributeName": "entry", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "model", "AttributeType": "S"},
                              {"AttributeName": "entry", "AttributeType": "S"}],
    )  # fmt: skip
    ledger = Ledger(TABLE, resource=boto3.resource("dynamodb"))
    ledger.save(
        _entry(arns[1], 1, "Approved", "2026-11-01T09:00:00.000Z", target=VersionRef(1, arns[1]))
    )
    promoted = _entry(
        arns[2], 2, "Approved", "2026-11-02T09:00:00.000Z",
        previous_champion=VersionRef(1, arns[1]), target=VersionRef(2, arns[2]),
        lambda_version="7", deployment_id="d-V2CANARY",
    )  # fmt: skip
    ledger.save(promoted)
    pointer = ChampionPointer(PREFIX, ssm=emulator.client("ssm"))
    pointer.put(Champion(
        MODEL, 2, arns[2], "s3://artifacts/v2/model.tar.gz", since=promoted.occurred_at,
        entry=promoted.entry, lambda_version="7",
    ))  # fmt: skip
    return Registry(arns, sagemaker, ledger, pointer)


def _hook(
    registry: Registry, version: int, status: str, steps: list[dict[str, Any]]
) -> threading.Thread:
    """Play the approval hook: once `version` shows `status`, write its entry (in progress)
    and then each of `steps` (field changes) a moment apart."""

    def run() -> None:
        session = boto3.session.Session()
        sagemaker, arn = session.client("sagemaker"), registry.arns[version]
        deadline = time.monotonic() + 10
        while (
            sagemaker.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] != status
        ):
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
        ledger = Ledger(TABLE, resource=session.resource("dynamodb"))
        action = Action.ROLLBACK if status == "Rejected" else Action.PROMOTE
        entry = _entry(arn, version, status, "2026-11-03T09:00:00.000Z", action=action,
                       outcome=Outcome.IN_PROGRESS, reason="rollout started")  # fmt: skip
        for changes in [{}, *steps]:
            time.sleep(0.3)
            entry = replace(entry, **changes)
            ledger.save(entry)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _row(output: str, version: str) -> str:
    rows = [line for line in output.splitlines() if f"│ {version} " in line]
    assert len(rows) == 1, output
    return rows[0]


def test_list_shows_metrics_delta_and_the_champion_newest_first(registry: Registry) -> None:
    result = runner.invoke(app, ["models", "list", MODEL])
    assert result.exit_code == 0, result.output
    v3, v2, v1 = (_row(result.output, v) for v in ("v3", "v2 ★", "v1"))
    lines = result.output.splitlines()
    assert lines.index(v3) < lines.index(v2) < lines.index(v1)
    assert "PendingManualApproval" in v3 and "0.8450" in v3 and "+0.0150" in v3
    assert "obj-v3" in v3 and "credit-risk-20261103-run3" in v3
    assert "Approved" in v1 and "0.8000" in v1 and "-0.0300" in v1
    assert "0.8300" in v2 and "+0" not in v2 and "-0" not in v2  # the reference has no delta
    assert "★ champion (serving): v2" in result.output


def test_list_follows_pages_up_to_the_limit(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(models_cli, "PAGE_SIZE", 1)
    result = runner.invoke(app, ["models", "list", MODEL, "--limit", "2"])
    assert result.exit_code == 0, result.output
    assert "│ v3 " in result.output and "│ v2 ★ " in result.output and "│ v1 " not in result.output
    everything = runner.invoke(app, ["models", "list", MODEL, "--limit", "5"])
    assert all(f"│ {v} " in everything.output for v in ("v3", "v2 ★", "v1"))


def test_chart_draws_one_bar_per_version_with_the_champion_marked(registry: Registry) -> None:
    result = runner.invoke(app, ["models", "list", MODEL, "--chart"])
    assert result.exit_code == 0, result.output
    bars = [line for line in result.output.splitlines() if "█" in line]
    assert [line.split()[0] for line in bars] == ["v3", "v2", "v1"]
    assert "★" in bars[1] and bars[2].count("█") < bars[1].count("█") < bars[0].count("█")
    assert "auc per version" in result.output


def test_show_prints_metrics_provenance_and_ledger_entries(registry: Registry) -> None:
    result = runner.invoke(app, ["models", "show", registry.arns[2]])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "credit-risk v2 ★ champion" in out and "v2 looks good" in out
    assert "auc (gate)" in out and "0.8300" in out and "logloss" in out and "0.4800" in out
    assert "credit-risk-20261102-run2" in out and "obj-v2" in out and "2abc123" in out
    assert "s3://code/bundles/credit-risk/v2.tar.gz" in out
    assert "s3://artifacts/runs/credit-risk-20261102-run2/evaluation/evaluation.json" in out
    assert "d-V2CANARY" in out and "alice (role Approver)" in out and "v1 → v2" in out
    pending = runner.invoke(app, ["models", "show", registry.arns[3]]).output
    assert "no (serving: v2)" in pending and "ledger: no entries for this version" in pending
    assert "+0.0150" in pending  # its auc against the champion's


def _bad(registry: Registry, command: str) -> list[tuple[list[str], str]]:
    arn = registry.arns[3]
    return [
        ([command, "not-an-arn", "--reason", "ok"], "not a model package version ARN"),
        ([command, arn.replace("model-package/", "model-package-group/"), "--reason", "ok"],
         "not a model package version ARN"),
        ([command, arn.rsplit("/", 1)[0] + "/99", "--reason", "ok"], "no model package"),
        ([command, arn, "--reason", "   "], "--reason must say why"),
        ([command, arn, "--reason", "x" * 1025], "SageMaker accepts at most 1024"),
        ([command, arn, "--reason", "ok", "--env", "prod"],
         "cannot read stack mlops-prod-registry"),
    ]  # fmt: skip


@pytest.mark.parametrize("command", ["approve", "reject"])
def test_bad_input_exits_2_and_changes_nothing(registry: Registry, command: str) -> None:
    before = registry.state(3)
    for args, message in _bad(registry, command):
        result = runner.invoke(app, ["models", *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
    assert registry.state(3) == before


def test_a_change_that_changes_nothing_says_so(registry: Registry) -> None:
    before = registry.state(2)
    result = runner.invoke(app, ["models", "approve", registry.arns[2], "--reason", "again"])
    assert result.exit_code == 0 and "v2 is already Approved: nothing changed" in result.output
    assert registry.state(2) == before


def test_approve_without_waiting_sets_status_and_reason(registry: Registry) -> None:
    reason = "beats v2 on auc; " + "r" * (1024 - 17)  # the longest description SageMaker takes
    result = runner.invoke(
        app, ["models", "approve", registry.arns[3], "--reason", reason, "--no-wait"]
    )
    assert result.exit_code == 0, result.output
    assert "PendingManualApproval → Approved" in result.output
    package = registry.package(3)
    assert package["ModelApprovalStatus"] == "Approved" and package["ApprovalDescription"] == reason
    assert package["CustomerMetadataProperties"]["metric.auc"] == "0.845"


def test_approve_waits_for_the_hooks_final_outcome(registry: Registry) -> None:
    hook = _hook(registry, 3, "Approved", [
        {"deployment_id": "d-V3CANARY", "reason": "canary started"},
        {"outcome": Outcome.DEPLOYED, "reason": "canary finished",
         "target": VersionRef(3, registry.arns[3])},
    ])  # fmt: skip
    result = runner.invoke(app, ["models", "approve", registry.arns[3], "--reason", "better auc",
                                 "--timeout", "20"])  # fmt: skip
    hook.join(5)
    assert result.exit_code == 0, result.output
    assert "canary in progress: CodeDeploy deployment d-V3CANARY" in result.output
    assert "outcome: promote deployed (v3 serves): canary finished" in result.output


def test_a_failed_outcome_exits_1(registry: Registry) -> None:
    hook = _hook(registry, 3, "Approved", [{"outcome": Outcome.FAILED, "reason": "alarm fired"}])
    result = runner.invoke(app, ["models", "approve", registry.arns[3], "--reason", "try it"])
    hook.join(5)
    assert result.exit_code == 1, result.output
    assert "outcome: promote failed: alarm fired" in result.output


def test_timeout_exits_1_saying_what_is_known(registry: Registry) -> None:
    started = time.monotonic()
    result = runner.invoke(
        app, ["models", "approve", registry.arns[3], "--reason", "x", "--timeout", "1"]
    )
    assert result.exit_code == 1 and time.monotonic() - started < 5
    assert "timed out after 1s: the registry shows Approved" in result.output
    assert "the hook has recorded nothing for this change yet" in result.output
    assert registry.package(3)["ModelApprovalStatus"] == "Approved"


def test_timeout_reports_a_rollout_still_in_progress(registry: Registry) -> None:
    hook = _hook(registry, 3, "Approved", [{"deployment_id": "d-SLOW"}])
    result = runner.invoke(
        app, ["models", "approve", registry.arns[3], "--reason", "x", "--timeout", "2"]
    )
    hook.join(5)
    assert result.exit_code == 1, result.output
    assert "timed out after 2s: the registry shows Approved; canary in progress: CodeDeploy " \
           "deployment d-SLOW" in result.output  # fmt: skip


def test_an_earlier_entry_of_the_same_change_is_not_this_outcome(registry: Registry) -> None:
    """v3 was approved (the rollout failed) and then rejected; approving it again waits for a
    new entry instead of reporting the old failure."""
    registry.sagemaker.update_model_package(
        ModelPackageArn=registry.arns[3], ModelApprovalStatus="Rejected"
    )
    registry.ledger.save(_entry(registry.arns[3], 3, "Approved", "2026-11-02T10:00:00.000Z",
                                outcome=Outcome.FAILED, reason="old failure"))  # fmt: skip
    result = runner.invoke(
        app, ["models", "approve", registry.arns[3], "--reason", "retry", "--timeout", "1"]
    )
    assert result.exit_code == 1 and "recorded nothing for this change yet" in result.output
    assert "old failure" not in result.output


def test_rollback_rejects_the_champion_and_names_its_successor(registry: Registry) -> None:
    hook = _hook(registry, 2, "Rejected", [
        {"outcome": Outcome.DEPLOYED, "reason": "v1 serves again",
         "target": VersionRef(1, registry.arns[1])},
    ])  # fmt: skip
    result = runner.invoke(app, ["rollback", MODEL, "--reason", "bad calibration"])
    hook.join(5)
    assert result.exit_code == 0, result.output
    assert "v1 should serve afterwards (the newest other approved version)" in result.output
    assert "outcome: rollback deployed (v1 serves): v1 serves again" in result.output
    package = registry.package(2)
    assert package["ModelApprovalStatus"] == "Rejected"
    assert package["ApprovalDescription"] == "rollback: bad calibration"


def test_rollback_refuses_bad_input_and_changes_nothing(registry: Registry) -> None:
    before = registry.state(2)
    for args, message in [
        (["--reason", " "], "--reason must say why"),
        (["--reason", "x" * 1015], "the approval description is 1025 characters"),
        (["--reason", "ok", "--env", "prod"], "cannot read stack mlops-prod-registry"),
    ]:
        result = runner.invoke(app, ["rollback", MODEL, *args])
        assert result.exit_code == 2 and message in result.output, (args, result.output)
    boto3.client("ssm").delete_parameter(Name=f"{PREFIX}{MODEL}")
    result = runner.invoke(app, ["rollback", MODEL, "--reason", "ok"])
    assert result.exit_code == 2 and "'credit-risk' has no champion" in result.output
    assert registry.state(2) == before


def test_deployments_shows_the_ledger_newest_first(registry: Registry) -> None:
    result = runner.invoke(app, ["deployments", MODEL])
    assert result.exit_code == 0, result.output
    newest, oldest = (
        _row(result.output, "2026-11-02 09:00:00"),
        _row(result.output, "2026-11-01 09:00:00"),
    )
    lines = result.output.splitlines()
    assert lines.index(newest) < lines.index(oldest)
    assert "v2" in newest and "promote" in newest and "deployed" in newest and "v1 → v2" in newest
    assert "alice (role Approver)" in newest and "7 / d-V2CANARY" in newest
    assert "— → v1" in oldest
    latest = runner.invoke(app, ["deployments", MODEL, "--limit", "1"]).output
    assert "2026-11-02" in latest and "2026-11-01" not in latest
    assert "no ledger entries for 'fraud'" in runner.invoke(app, ["deployments", "fraud"]).output
