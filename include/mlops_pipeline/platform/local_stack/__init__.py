"""``make airflow``: the whole platform on this machine, on the embedded defaults.

Starts Airflow's api-server, scheduler, dag-processor and triggerer (LocalExecutor on the
SQLite metadata database under ``MLOPS_HOME/airflow``, as ``airflow standalone`` does), the
MLflow UI on the embedded tracking store and one model server per declared use case, unpauses
the DAGs that run on asset events or when triggered (those on a clock stay paused unless
``SCHEDULED_DAGS=unpaused``: the demo's days are past) and prints the URLs and the login
(``stack``). One Ctrl-C or SIGTERM (to it, or to ``make``'s process group) stops every process
it started, children included; a second one later kills what is left (``shutdown``,
``processes``).

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
