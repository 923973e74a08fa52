"""One moto method replaced by an engine extension, reversibly and only after a contract check.

Extensions that replace a single method (`s3_secure_transport`, `firehose_delivery`) share this
(`MethodPatch`; `PatchSet` replaces several attributes together, without a contract check):
`install()` is idempotent and runs the extension's contract check first, so a moto upgrade that
changes the patched internal fails loudly instead of silently changing behaviour;
`uninstall()` restores moto; `original` is what the replacement delegates to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class MotoContractError(RuntimeError):
    """A moto internal an extension patches changed; the extension must be adapted."""


class MethodPatch:
    def __init__(
        self,
        owner: Callable[[], type],
        name: str,
        replacement: Callable[..., Any],
        check: Callable[[], None],
    ) -> None:
        self._owner = owner  # imported lazily: moto is heavy and only needed once installed
        self._name = name
        self._replacement = replacement
        self._check = check
        self._original: Any = None

    @property
    def original(self) -> Any:
        """moto's own method (also before installing, for contract checks)."""
        return self._original if self._original is not None else getattr(self._owner(), self._name)

    def install(self) -> None:
        if self._original is not None:
            return
        self._check()
        owner = self._owner()
        self._original = getattr(owner, self._name)
        setattr(owner, self._name, self._replacement)

    def uninstall(self) -> None:
        if self._original is not None:
            setattr(self._owner(), self._name, self._original)
            self._original = None

    def installed(self) -> bool:
        return self._original is not None


class PatchSet:
    """Several moto attributes replaced together by one extension (`cloudwatch_alarms`,
    `lambda_runtime`). `patches()` lists (owner class, name, replacement); `install()` and
    `uninstall()` are idempotent; `set["<Owner>.<name>"]` is moto's original, what a
    replacement delegates to."""

    def __init__(self, patches: Callable[[], list[tuple[Any, str, Any]]]) -> None:
        self._patches = patches  # a function: moto is imported only once installed
        self._originals: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        return self._originals[key]

    def install(self) -> None:
        for owner, name, replacement in self._patches():
            key = f"{owner.__name__}.{name}"
            if key not in self._originals:
                self._originals[key] = getattr(owner, name)
                setattr(owner, name, replacement)

    def uninstall(self) -> None:
        for owner, name, _ in self._patches():
            original = self._originals.pop(f"{owner.__name__}.{name}", None)
            if original is not None:
                setattr(owner, name, original)
