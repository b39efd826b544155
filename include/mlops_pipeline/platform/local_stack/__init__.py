"""``make airflow``: the whole platform on this machine, on the embedded defaults.

Starts Airflow's api-server, scheduler, dag-processor and triggerer (LocalExecutor on the
SQLite metadata database under ``MLOPS_HOME/airflow``, as ``airflow standalone`` does), the
MLflow UI on the embedded tracking store and one model server per declared use case, unpauses
every use case's DAGs and prints the URLs and the login (``stack``). Ctrl-C (or SIGTERM) stops
every process it started, children included (``processes``).

Authentication is on: Airflow's simple auth manager with one user, ``admin`` (role admin),
whose password is generated once (``secrets.token_urlsafe``) into
``AIRFLOW_HOME/simple_auth_manager_passwords.json`` (mode 600). The JWT and API secrets shared
by the Airflow components are generated once into ``AIRFLOW_HOME/local_stack_secrets.json``
(``environment``).

Ports (all bound to 127.0.0.1): ``AIRFLOW_PORT`` (8080), ``MLFLOW_PORT`` (5000),
``MODEL_SERVER_PORT`` (8000): the first use case's model server, the next ones on the following
ports in the use cases' sorted order.

    python -m mlops_pipeline.platform.local_stack
"""


class StackError(RuntimeError):
    """A component did not start, or the configuration would switch authentication off."""
