"""Alias moves: promote a version to ``champion``, roll back, undo a promotion.

Alias moves are the only registry writes of a deployment; the deploy and rollback DAGs
serialize them through a one-slot pool, so two runs can never interleave
``previous_champion`` and ``champion``. Every move is read back and verified.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_pipeline.config import Settings
from mlops_pipeline.deployment import registry
from mlops_pipeline.deployment.registry import DeploymentError
from mlops_pipeline.failures import PermanentFailure

if TYPE_CHECKING:
    from mlops_pipeline.deployment.records import Evaluation


def promote(settings: Settings, version: str) -> dict[str, str | None]:
    """``previous_champion`` -> the old champion, then ``champion`` -> ``version``; re-read
    both and verify."""
    tracking = registry.client(settings)
    name = settings.spec.model_name
    old = registry.version_for_alias(tracking, name, registry.CHAMPION)
    if old is not None:
        tracking.set_registered_model_alias(name, registry.PREVIOUS_CHAMPION, str(old.version))
    tracking.set_registered_model_alias(name, registry.CHAMPION, str(version))
    _verify(tracking, name, registry.CHAMPION, str(version))
    if old is not None:
        _verify(tracking, name, registry.PREVIOUS_CHAMPION, str(old.version))
    return {"champion": str(version), "previous_champion": str(old.version) if old else None}


def rollback(settings: Settings, target: str = registry.PREVIOUS_CHAMPION) -> dict[str, str]:
    """Point ``champion`` at ``target`` (a version number or an alias); the replaced champion
    becomes ``previous_champion``, so a rollback can itself be undone."""
    tracking = registry.client(settings)
    name = settings.spec.model_name
    current = registry.version_for_alias(tracking, name, registry.CHAMPION)
    if target.isdigit():
        wanted = tracking.get_model_version(name, target)
    else:
        wanted = registry.version_for_alias(tracking, name, target)
    if wanted is None:
        raise DeploymentError(f"{name} has no version or alias {target!r} to roll back to")
    if current is not None and str(current.version) == str(wanted.version):
        raise DeploymentError(f"{name} v{wanted.version} is already the champion")
    tracking.set_registered_model_alias(name, registry.CHAMPION, str(wanted.version))
    if current is not None:
        tracking.set_registered_model_alias(name, registry.PREVIOUS_CHAMPION, str(current.version))
    _verify(tracking, name, registry.CHAMPION, str(wanted.version))
    return {
        "champion": str(wanted.version),
        "previous_champion": str(current.version) if current else "",
    }


def undo_promotion(settings: Settings, aliases: dict[str, str | None]) -> dict[str, str | None]:
    """Put ``champion`` back where it was before ``promote`` (or remove it for a first model)."""
    tracking = registry.client(settings)
    name = settings.spec.model_name
    previous = aliases.get("previous_champion")
    if previous:
        tracking.set_registered_model_alias(name, registry.CHAMPION, previous)
        _verify(tracking, name, registry.CHAMPION, previous)
    else:
        tracking.delete_registered_model_alias(name, registry.CHAMPION)
    return {"champion": previous, "rolled_back_from": aliases.get("champion")}


def _verify(tracking: Any, name: str, alias: str, version: str) -> None:
    found = registry.version_for_alias(tracking, name, alias)
    if found is None or str(found.version) != version:
        raise DeploymentError(
            f"{name}@{alias} reads back as {found.version if found else None}, not {version}"
        )


def promote_verified(
    settings: Settings,
    evaluation: Evaluation,
    reference: dict[str, str],
    decided_by: str,
) -> dict[str, Any]:
    """Promote the evaluated challenger, smoke-test it against the model server
    (``serving_url``; undoing the promotion when it fails) and record the decision: the deploy
    DAG's promote task and ``mlops-pipeline deploy`` alike. Returns the aliases and the
    record's path; raises ``PermanentFailure`` after an undone promotion (a retry would only
    promote again)."""
    from mlops_pipeline.deployment.decisions import record_decision
    from mlops_pipeline.deployment.smoke import SmokeTestFailed, smoke_test

    version = evaluation.challenger.version
    aliases = promote(settings, version)
    outcome, reasons, smoke = "promoted", [], None
    if settings.serving_url:
        try:
            smoke = smoke_test(settings, version)
        except SmokeTestFailed as exc:
            aliases = undo_promotion(settings, aliases)
            outcome, reasons = "rolled back (smoke test failed)", [str(exc)]
    path = record_decision(
        settings,
        evaluation,
        outcome,
        reference,
        reasons=reasons,
        aliases=aliases,
        decided_by=decided_by,
        smoke_test=smoke,
    )
    if reasons:
        raise PermanentFailure(f"promotion of v{version} rolled back: {reasons[0]} ({path})")
    return {"outcome": outcome, "aliases": aliases, "decision_record": str(path)}
