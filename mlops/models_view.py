"""What approvers see of the registry and the ledger, free of AWS: parsing and rich rendering.

`mlops models ...`, `mlops deployments` and `mlops rollback` (`mlops/models_cli.py`) fetch
DescribeModelPackage responses, ledger entries and the champion pointer; this module turns them
into typed values (`PackageArn`, `ModelVersion`) and into tables, a bar chart and one-line
progress messages. Metrics and provenance come from the `CustomerMetadataProperties` that
`lambdas/register_model/domain.py` writes (`metric.<name>`, `gate_metric`, `run_id`, ...).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from mlops.deployments import LedgerEntry, Outcome, VersionRef

# SageMaker's limit on UpdateModelPackage.ApprovalDescription (botocore's model: max 1024).
MAX_APPROVAL_DESCRIPTION = 1024
METRIC_PREFIX = "metric."
CHAMPION_MARK = "★"
CHART_WIDTH = 40
NONE = "—"
_ARN = re.compile(
    r"arn:(?P<partition>aws(?:-[a-z]+)*):sagemaker:(?P<region>[a-z]{2}(?:-[a-z]+)+-\d+):"
    r"(?P<account>\d{12}):model-package/(?P<group>[a-zA-Z0-9](?:-*[a-zA-Z0-9]){0,62})/"
    r"(?P<version>[1-9]\d*)"
)
_GROUP = re.compile(r"[a-zA-Z0-9](?:-*[a-zA-Z0-9]){0,62}")
_STATUS_STYLE = {"Approved": "green", "Rejected": "red", "PendingManualApproval": "yellow"}


@dataclass(frozen=True)
class PackageArn:
    """A versioned model package's ARN: `arn:<partition>:sagemaker:<region>:<account>:
    model-package/<group>/<version>`."""

    arn: str
    partition: str
    region: str
    account: str
    group: str
    version: int

    @classmethod
    def parse(cls, text: str) -> PackageArn:
        """Raise ValueError saying what shape was expected when `text` is not one."""
        match = _ARN.fullmatch(text.strip())
        if match is None:
            raise ValueError(
                f"not a model package version ARN: {text!r}; expected "
                "arn:<partition>:sagemaker:<region>:<account>:model-package/<group>/<version> "
                "(see `mlops models list MODEL`)"
            )
        parts = match.groupdict()
        return cls(match.group(0), parts["partition"], parts["region"], parts["account"],
                   parts["group"], int(parts["version"]))  # fmt: skip


def check_model_name(model: str) -> str:
    """A model is a model package group: 1-63 letters, digits and inner hyphens."""
    if not _GROUP.fullmatch(model):
        raise ValueError(
            f"not a model (package group) name: {model!r}; expected 1-63 letters, digits "
            "and hyphens, starting and ending with a letter or digit"
        )
    return model


def check_description(text: str) -> str:
    """An ApprovalDescription SageMaker accepts and an auditor can read: not blank, ≤ 1024."""
    if not text.strip():
        raise ValueError("--reason must say why (it is recorded as the approval description)")
    if len(text) > MAX_APPROVAL_DESCRIPTION:
        raise ValueError(
            f"the approval description is {len(text)} characters; SageMaker accepts at most "
            f"{MAX_APPROVAL_DESCRIPTION}"
        )
    return text


def parse_metric(text: str | None) -> float | None:
    """A metric value as the registration wrote it (repr of a finite number), else None."""
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


@dataclass(frozen=True)
class ModelVersion:
    """One registered version, from a DescribeModelPackage response."""

    arn: str
    group: str
    version: int
    status: str
    created: datetime | None = None
    modified: datetime | None = None
    created_by: Mapping[str, Any] | None = None
    modified_by: Mapping[str, Any] | None = None
    description: str = ""
    approval_description: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    report_uri: str | None = None
    repository: str | None = None

    @classmethod
    def from_describe(cls, package: Mapping[str, Any]) -> ModelVersion:
        quality = package.get("ModelMetrics", {}).get("ModelQuality", {})
        return cls(
            arn=package["ModelPackageArn"], group=package.get("ModelPackageGroupName", ""),
            version=int(package.get("ModelPackageVersion", 0)),
            status=package.get("ModelApprovalStatus", "PendingManualApproval"),
            created=package.get("CreationTime"), modified=package.get("LastModifiedTime"),
            created_by=package.get("CreatedBy"), modified_by=package.get("LastModifiedBy"),
            description=package.get("ModelPackageDescription", ""),
            approval_description=package.get("ApprovalDescription", ""),
            metadata=dict(package.get("CustomerMetadataProperties") or {}),
            report_uri=quality.get("Statistics", {}).get("S3Uri"),
            repository=package.get("MetadataProperties", {}).get("Repository"),
        )  # fmt: skip

    @property
    def label(self) -> str:
        return f"v{self.version}"

    @property
    def gate_metric(self) -> str | None:
        return self.metadata.get("gate_metric")

    @property
    def metrics(self) -> dict[str, float]:
        """Every numeric `metric.<name>` entry, by name."""
        found = {
            key.removeprefix(METRIC_PREFIX): parse_metric(value)
            for key, value in self.metadata.items()
            if key.startswith(METRIC_PREFIX)
        }
        return {name: value for name, value in found.items() if value is not None}

    def metric(self, name: str | None) -> float | None:
        return None if name is None else self.metrics.get(name)


def delta(version: ModelVersion, champion: ModelVersion | None) -> float | None:
    """`version`'s gate metric minus the champion's value of that same metric."""
    if champion is None:
        return None
    mine, theirs = version.metric(version.gate_metric), champion.metric(version.gate_metric)
    return None if mine is None or theirs is None else mine - theirs


def number(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return NONE
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def when(value: datetime | str | None) -> str:
    """A timestamp as `YYYY-MM-DD HH:MM:SS` UTC (ISO strings and datetimes alike)."""
    if value is None or value == "":
        return NONE
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    except ValueError:
        return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def identity(principal: Mapping[str, Any] | None) -> str:
    """A readable name for SageMaker's CreatedBy/LastModifiedBy (an IAM identity or a
    SageMaker Studio user profile)."""
    if not principal:
        return NONE
    iam = principal.get("IamIdentity")
    if isinstance(iam, Mapping):
        arn = str(iam.get("Arn") or "")
        resource = arn.split(":", 5)[5] if arn.count(":") >= 5 else arn
        kind, _, path = resource.partition("/")
        if kind == "assumed-role":
            role, _, session = path.partition("/")
            name = f"{session} (role {role})" if session else f"role {role}"
        elif kind == "user":
            name = path.rsplit("/", 1)[-1]
        elif kind == "role":
            name = f"role {path.rsplit('/', 1)[-1]}"
        else:
            name = resource or str(iam.get("PrincipalId") or NONE)
        source = iam.get("SourceIdentity")
        return f"{name}, source {source}" if source else name
    if principal.get("UserProfileName"):
        return f"{principal['UserProfileName']} (studio profile)"
    if principal.get("UserProfileArn"):
        return str(principal["UserProfileArn"]).rsplit("/", 1)[-1] + " (studio profile)"
    return NONE


def shorten(text: str | None, limit: int = 60) -> str:
    if not text:
        return NONE
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _status(status: str) -> Text:
    return Text(status, style=_STATUS_STYLE.get(status, ""))


def _version_cell(version: ModelVersion, champion_arn: str | None) -> str:
    return f"{version.label} {CHAMPION_MARK}" if version.arn == champion_arn else version.label


def versions_table(versions: Sequence[ModelVersion], champion: ModelVersion | None) -> Table:
    """Newest first as given; the champion's row carries ★ and no delta (it is the reference)."""
    champion_arn = champion.arn if champion else None
    caption = (
        f"{CHAMPION_MARK} champion (serving): {champion.label}" if champion else "no champion yet"
    )
    table = Table("version", "status", "gate metric", "value", "Δ champion", "created (UTC)",
                  "code version", "run", caption=caption)  # fmt: skip
    for version in versions:
        change = (
            NONE if version.arn == champion_arn else number(delta(version, champion), signed=True)
        )
        table.add_row(
            _version_cell(version, champion_arn), _status(version.status),
            version.gate_metric or NONE, number(version.metric(version.gate_metric)), change,
            when(version.created), version.metadata.get("code_version", NONE),
            version.metadata.get("run_id", NONE),
        )  # fmt: skip
    return table


def chart_metric(versions: Sequence[ModelVersion], champion: ModelVersion | None) -> str | None:
    """The metric to compare: the champion's gate metric, else the newest version's."""
    for candidate in (champion, *versions):
        if candidate is not None and candidate.gate_metric:
            return candidate.gate_metric
    return None


def metric_chart(versions: Sequence[ModelVersion], champion: ModelVersion | None) -> Group | Text:
    """One horizontal bar per version. Bars start a quarter of the spread below the lowest
    value (not at zero), so the small differences an approver weighs are visible; the
    caption says so and every bar carries its exact value."""
    metric = chart_metric(versions, champion)
    if metric is None:
        return Text("no gate metric recorded on these versions: nothing to chart")
    values = [v.metric(metric) for v in versions]
    known = [value for value in values if value is not None]
    if not known:
        return Text(f"no version records {metric}: nothing to chart")
    low, high = min(known), max(known)
    base = low - (high - low) / 4
    grid = Table.grid(padding=(0, 1))
    for version, value in zip(versions, values, strict=True):
        is_champion = champion is not None and version.arn == champion.arn
        if value is None:
            bar = Text(f"(no {metric})", style="dim")
        else:
            length = (
                CHART_WIDTH if high == low else round((value - base) / (high - base) * CHART_WIDTH)
            )
            bar = Text("█" * max(1, length), style="bold yellow" if is_champion else "cyan")
        grid.add_row(_version_cell(version, champion.arn if champion else None), bar,
                     number(value))  # fmt: skip
    scale = "all equal" if high == low else f"bars start at {base:.4f}, not zero"
    return Group(Text(f"{metric} per version ({scale})", style="bold"), grid)


def _ref(ref: VersionRef | None) -> str:
    return ref.label if ref else NONE


def ledger_table(entries: Sequence[LedgerEntry], *, title: str | None = None) -> Table:
    """The ledger as `mlops deployments` shows it, in the order given (newest first)."""
    table = Table("when (UTC)", "version", "status", "action", "outcome", "previous → target",
                  "approver", "reason", "lambda / deployment", title=title)  # fmt: skip
    for entry in entries:
        outcome_style = {Outcome.FAILED: "red", Outcome.DEPLOYED: "green"}.get(entry.outcome, "")
        rollout = " / ".join(x for x in (entry.lambda_version, entry.deployment_id) if x)
        table.add_row(
            when(entry.occurred_at), f"v{entry.version}", _status(entry.status), str(entry.action),
            Text(str(entry.outcome), style=outcome_style),
            f"{_ref(entry.previous_champion)} → {_ref(entry.target)}", identity(entry.approver),
            shorten(entry.reason), rollout or NONE,
        )  # fmt: skip
    return table


def progress(entry: LedgerEntry) -> str:
    """One line on where the hook is with a change (printed each time it moves on)."""
    if entry.outcome is Outcome.IN_PROGRESS:
        if entry.deployment_id:
            return f"canary in progress: CodeDeploy deployment {entry.deployment_id}"
        return f"{entry.action} in progress: {entry.reason}"
    target = (
        f" ({entry.target.label} serves)"
        if entry.outcome is Outcome.DEPLOYED and entry.target
        else ""
    )
    return f"{entry.action} {entry.outcome}{target}: {entry.reason}"


_PROVENANCE = (
    ("run", "run_id"), ("code version", "code_version"), ("git commit", "git_commit"),
    ("bundle sha256", "bundle_sha256"), ("uploaded by", "uploaded_by"),
    ("data snapshot", "data_snapshot"), ("training job", "training_job_name"),
)  # fmt: skip


def _facts(rows: Sequence[tuple[str, str | Text]]) -> Table:
    grid = Table.grid(padding=(0, 2))
    for name, value in rows:
        grid.add_row(Text(name, style="bold"), value)
    return grid


def _summary(version: ModelVersion, champion: ModelVersion | None) -> Table:
    is_champion = champion is not None and champion.arn == version.arn
    serving = "yes: serving now" if is_champion else f"no (serving: {_label(champion)})"
    improvement = number(parse_metric(version.metadata.get("improvement")), signed=True)
    gate = f"{version.gate_metric or NONE}: {improvement} over the champion of then " + (
        f"({version.metadata.get('champion_arn', 'none')})"
    )
    return _facts([
        ("arn", version.arn), ("status", _status(version.status)),
        ("approval", version.approval_description or NONE),
        ("created", f"{when(version.created)} by {identity(version.created_by)}"),
        ("modified", f"{when(version.modified)} by {identity(version.modified_by)}"),
        ("description", version.description or NONE),
        ("gate", gate),
        ("champion", serving),
    ])  # fmt: skip


def _label(version: ModelVersion | None) -> str:
    return version.label if version else NONE


def _metrics(version: ModelVersion, champion: ModelVersion | None) -> Table:
    """Every metric with its difference to the current champion's value of it."""
    other = champion if champion is not None and champion.arn != version.arn else None
    table = Table("metric", "value", f"Δ champion ({_label(other)})")
    for name, value in sorted(version.metrics.items()):
        theirs = other.metric(name) if other else None
        change = None if theirs is None else value - theirs
        mark = f"{name} (gate)" if name == version.gate_metric else name
        table.add_row(mark, number(value), number(change, signed=True))
    return table


def version_details(
    version: ModelVersion, champion: ModelVersion | None, entries: Sequence[LedgerEntry]
) -> Group:
    """Everything an approver needs to judge one version (`mlops models show`)."""
    mark = f" {CHAMPION_MARK} champion" if champion and champion.arn == version.arn else ""
    provenance = [(name, version.metadata.get(key, NONE)) for name, key in _PROVENANCE]
    provenance.append(("bundle", version.repository or version.metadata.get("bundle_key", NONE)))
    provenance.append(("report", version.report_uri or NONE))
    history: Table | Text = (
        ledger_table(entries, title="ledger entries")
        if entries
        else Text("ledger: no entries for this version")
    )
    return Group(
        Text(f"{version.group} {version.label}{mark}", style="bold"), _summary(version, champion),
        _metrics(version, champion), Text("provenance", style="bold"), _facts(provenance), history,
    )  # fmt: skip
