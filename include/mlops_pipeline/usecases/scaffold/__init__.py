"""Scaffold a use case from a sample of its data (``mlops-pipeline new-usecase``).

``mlops-pipeline new-usecase NAME --from FILE --entity COL --timestamp COL --label COL`` reads the
sample the way ingestion reads a landing file (so the kinds inferred are the kinds the
validation will see, ``inference``) and drafts ``usecases/NAME/usecase.yaml`` (``draft``): every
column's kind, its range (from the sample, widened) or value set, whether it may be empty, one
feature view holding every feature, the versioned feature service and the serving fields. The
split, training, gates and drift policy keep the spec's defaults and are written as comments,
rendered from the spec's own models (``render``), so the user sees what applies without the file
holding a second copy of a default. It also writes ``dags/NAME.py``, the use case's two-line
entry point into the DAG factory (``new_usecase``).
"""

from mlops_pipeline.failures import PermanentFailure


class ScaffoldError(PermanentFailure):
    """The sample or the arguments cannot make a valid use case (the message says why)."""
