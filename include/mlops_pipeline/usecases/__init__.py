"""Use cases: one folder of declarations per model (``usecases/<name>/usecase.yaml``)."""

from mlops_pipeline.usecases.loader import UseCase, declared_usecases, load_usecase

__all__ = ["UseCase", "declared_usecases", "load_usecase"]
