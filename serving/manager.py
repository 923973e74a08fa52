"""Which version of each model is being served, and swapping it without failing a request.

`ModelManager.refresh()` asks the champion source for each model's current version; for each that
differs from the loaded one it fetches and loads the new artifact *beside* the old one and then
replaces the dictionary entry in one assignment. A request reads `manager.get(name)` once and uses
that `LoadedModel` to the end, so requests in flight finish on the version they started with and
no request ever sees a half-loaded model. A version that fails to load is logged, remembered (not
retried every cycle) and the previous version keeps serving.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from serving.champion import ChampionRef, ChampionSource
from serving.model import LoadedModel, ModelLoadError, load_model
from serving.spec import ModelSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RefreshResult:
    loaded: dict[str, str]
    failed: dict[str, str]
    unchanged: list[str]
    missing: list[str]


class ModelManager:
    def __init__(self, specs: Mapping[str, ModelSpec], source: ChampionSource) -> None:
        self.specs = dict(specs)
        self._source = source
        self._models: dict[str, LoadedModel] = {}
        self._rejected: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()  # one refresh at a time; readers never take it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def get(self, name: str) -> LoadedModel | None:
        return self._models.get(name)

    @property
    def loaded(self) -> dict[str, LoadedModel]:
        return dict(self._models)

    @property
    def rejected(self) -> dict[str, str]:
        """Model -> why its current champion is not served (a load failure); the previous
        version, if any, is still serving."""
        return {model: reason for (model, _), reason in self._rejected.items()}

    def refresh(self) -> RefreshResult:
        result = RefreshResult({}, {}, [], [])
        with self._lock:
            for name, spec in self.specs.items():
                self._refresh_one(name, spec, result)
        return result

    def _refresh_one(self, name: str, spec: ModelSpec, result: RefreshResult) -> None:
        ref = self._source.current(name)
        current = self._models.get(name)
        if ref is None:
            result.missing.append(name)
            return
        if current is not None and current.version == ref.version:
            self._forget_rejections(name)
            result.unchanged.append(name)
            return
        if (name, ref.version) in self._rejected:
            result.failed[name] = self._rejected[(name, ref.version)]
            return
        try:
            model = self._load(ref, spec)
        except ModelLoadError as exc:
            self._rejected[(name, ref.version)] = str(exc)
            result.failed[name] = str(exc)
            logger.error("model %s version %s not served: %s", name, ref.version, exc)
            return
        self._models = {**self._models, name: model}
        self._forget_rejections(name)
        result.loaded[name] = ref.version
        logger.info(
            "serving %s version %s (was %s), loaded in %.0f ms",
            name,
            ref.version,
            current.version if current else None,
            model.load_seconds * 1000,
        )

    def _forget_rejections(self, name: str) -> None:
        """Only the champion's own rejection is news; older ones are superseded."""
        self._rejected = {key: why for key, why in self._rejected.items() if key[0] != name}

    def _load(self, ref: ChampionRef, spec: ModelSpec) -> LoadedModel:
        directory = self._source.fetch(ref)
        return load_model(
            directory, spec, version=ref.version, package_arn=ref.package_arn, source=ref.source
        )

    def start_polling(self, interval: float) -> None:
        """Refresh every `interval` seconds on a daemon thread (errors are logged, not fatal)."""
        if interval <= 0 or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._poll, args=(interval,), name="champion-refresh", daemon=True
        )
        self._thread.start()

    def stop_polling(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _poll(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.refresh()
            except Exception:  # the registry or S3 unreachable: keep serving what is loaded
                logger.exception("champion refresh failed; still serving %s", self.versions())

    def versions(self) -> dict[str, str]:
        return {name: model.version for name, model in self._models.items()}
