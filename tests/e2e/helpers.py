"""Reading Airflow's metadata database in end-to-end tests."""

from __future__ import annotations


def asset_event_extras(asset_name: str) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        events = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.name == asset_name)
            .order_by(AssetEvent.id)
            .all()
        )
        return [dict(e.extra or {}) for e in events]
