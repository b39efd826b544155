"""The post-promotion smoke test: does the model server serve the promoted version?"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mlops_pipeline.config import Settings
from mlops_pipeline.deployment import registry
from mlops_pipeline.failures import PermanentFailure

if TYPE_CHECKING:
    from mlops_pipeline.usecases.spec import UseCaseSpec


class SmokeTestFailed(PermanentFailure):
    """The serving endpoint did not serve the promoted version in time."""


def smoke_test(settings: Settings, version: str) -> dict[str, Any]:
    """Ask the running model server for ``version`` until the timeout: ``GET /model`` must
    report it, ``POST /predict`` (one entity, features from the online store) must answer
    with it and ``/metrics`` must show no worker still serving another version (a server with
    several workers swaps each on its own)."""
    import httpx

    from mlops_pipeline.serving.metrics import served_versions

    request = smoke_request(settings.spec)
    base = settings.model_server_url.rstrip("/")
    deadline = time.monotonic() + settings.smoke_timeout_seconds
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            served = httpx.get(f"{base}/model", timeout=5).json().get("version")
            if served == version:
                answer = httpx.post(f"{base}/predict", json=request, timeout=10)
                if answer.status_code == 200 and answer.json()["model_version"] == version:
                    exposition = httpx.get(f"{base}/metrics", timeout=5).text
                    others = served_versions(exposition, registry.CHAMPION) - {version}
                    if not others:
                        return {"url": base, "version": version, "status": answer.status_code}
                    last = f"workers still serve version(s) {', '.join(sorted(others))}"
                else:
                    last = f"/predict answered {answer.status_code}: {answer.text[:200]}"
            else:
                last = f"/model serves version {served}"
        except (httpx.HTTPError, ValueError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(1)
    raise SmokeTestFailed(
        f"{base} did not serve version {version} within {settings.smoke_timeout_seconds:.0f} s "
        f"(last: {last})"
    )


def smoke_request(spec: UseCaseSpec) -> dict[str, Any]:
    """The smoke test's ``/predict`` body: one entity by key (an unknown one is answered under
    ``unknown``, which still proves the version answers)."""
    key = spec.entity.key
    lowest = spec.column(key).min
    return {"entities": {key: [int(lowest) if lowest is not None else 1]}}
