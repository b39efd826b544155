"""The Feast objects of the use case named by ``MLOPS_USECASE``, for the ``feast`` CLI.

The platform builds these from the declaration itself (``mlops_pipeline.features.definitions``)
and never imports this file; it is here so that ``feast ui`` or ``feast registry-dump`` run in
this folder see the same objects. Export the settings first: ``MLOPS_USECASE``, and the
variables of ``feature_store.yaml`` (``MLOPS_FEAST_PROJECT``, ``MLOPS_FEAST_DIR``, ...), which
the platform fills in for its own processes.
"""

from mlops_pipeline.config import get_settings
from mlops_pipeline.features.definitions import build_definitions

_built = build_definitions(get_settings())

entity = _built.entity
source = _built.source
feature_service = _built.feature_service
# Feast's CLI finds objects among a module's globals, one name per object.
globals().update({f"view_{view.name}": view for view in _built.feature_views})
globals().update({f"on_demand_{view.name}": view for view in _built.on_demand_feature_views})
