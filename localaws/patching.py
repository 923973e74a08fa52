"""One moto method replaced by an engine extension, reversibly and only after a contract check.

Extensions that replace a single method (`s3_secure_transport`, `firehose_delivery`) share this:
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
