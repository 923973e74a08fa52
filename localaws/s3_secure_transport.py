"""Let moto evaluate S3 bucket-policy conditions about the transport, as AWS would over HTTPS.

Why: CDK's `enforce_ssl=True` (and `minimum_tls_version`) adds a statement
`Deny s3:* to * when aws:SecureTransport is false` (or `s3:TlsVersion < x`). moto 5.2.5 ignores
conditions it cannot evaluate, so that statement denies *every* object request: a platform
bucket deployed with secure defaults becomes unusable (PutObject -> 403). The emulator stands in
for AWS's HTTPS endpoints, so requests are treated as secure (`aws:SecureTransport=true`,
`s3:TlsVersion=1.3`): statements whose transport conditions do not hold are dropped before moto
evaluates the policy. Statements with conditions on other keys are left to moto unchanged, so
an unconditional Deny still denies.

Statements conditioned on the caller's identity (`aws:PrincipalArn` and its kin) are dropped as
well: the engine has no IAM principals (every request carries the same test credentials), so it
cannot tell the one role such a statement exempts from everybody else -- as with IAM policies,
the engine does not enforce identity-based restrictions (e.g. the training stack's code bucket
reserving `continuous-training/` for the retraining role; docs/monitoring.md).

`install()` is idempotent, `uninstall()` restores moto; `check_contract()` fails loudly if the
patched internal (`moto.s3.models.FakeBucket.get_permission`) changes.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

from localaws.patching import MethodPatch, MotoContractError

REQUEST_CONTEXT: dict[str, str] = {"aws:SecureTransport": "true", "s3:TlsVersion": "1.3"}
IDENTITY_KEYS = frozenset({"aws:principalarn", "aws:principalaccount", "aws:principalorgid",
                           "aws:principaltype", "aws:userid", "aws:username"})  # fmt: skip


def check_contract() -> None:
    from moto.iam.access_control import IAMPolicy

    target = _PATCH.original
    params = list(inspect.signature(target).parameters)
    if params != ["self", "action", "resource"]:
        raise MotoContractError(
            f"moto.s3.models.FakeBucket.get_permission signature changed to {params}; "
            "localaws.s3_secure_transport must be adapted"
        )
    if (
        "incoming_condition_values"
        not in inspect.signature(IAMPolicy.is_action_permitted).parameters
    ):
        raise MotoContractError(
            "moto.iam.access_control.IAMPolicy.is_action_permitted changed; "
            "localaws.s3_secure_transport must be adapted"
        )


def _owner() -> type:
    from moto.s3.models import FakeBucket

    return FakeBucket


def _get_permission(bucket: Any, action: str, resource: str) -> Any:
    from moto.iam.access_control import IAMPolicy, PermissionResult

    if bucket.policy is None:
        return PermissionResult.NEUTRAL
    document = json.loads(bucket.policy)
    statements = document.get("Statement", [])
    statements = [statements] if isinstance(statements, dict) else statements
    document["Statement"] = [s for s in statements if _may_apply(s.get("Condition", {}))]
    return IAMPolicy(json.dumps(document)).is_action_permitted(action, resource)


def _may_apply(condition: dict[str, dict[str, Any]]) -> bool:
    """False when a transport condition is known not to hold for emulator requests, or when
    the statement depends on the caller's identity (which the emulator does not have)."""
    for operator, tests in condition.items():
        for key, expected in tests.items():
            if key.lower() in IDENTITY_KEYS:
                return False
            if key not in REQUEST_CONTEXT:
                continue
            values = expected if isinstance(expected, list) else [expected]
            if not any(_holds(operator, REQUEST_CONTEXT[key], str(v)) for v in values):
                return False
    return True


def _holds(operator: str, actual: str, expected: str) -> bool:
    numeric = {
        "NumericLessThan": lambda a, e: a < e,
        "NumericLessThanEquals": lambda a, e: a <= e,
        "NumericGreaterThan": lambda a, e: a > e,
        "NumericGreaterThanEquals": lambda a, e: a >= e,
        "NumericEquals": lambda a, e: a == e,
        "NumericNotEquals": lambda a, e: a != e,
    }
    if operator in numeric:
        return bool(numeric[operator](float(actual), float(expected)))
    if operator in ("Bool", "StringEquals", "StringEqualsIgnoreCase"):
        return actual.lower() == expected.lower()
    if operator == "StringNotEquals":
        return actual.lower() != expected.lower()
    return True


_PATCH = MethodPatch(_owner, "get_permission", _get_permission, check_contract)
install, uninstall, installed = _PATCH.install, _PATCH.uninstall, _PATCH.installed
