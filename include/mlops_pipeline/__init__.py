"""MLOps pipeline logic: plain, typed functions that Airflow tasks wrap in one line each.

Nothing here imports Airflow except the modules that are about Airflow (``assets``).
"""

__version__ = "0.1.0"
