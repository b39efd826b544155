"""The smallest TaskFlow DAG file (one task, a cron schedule): Airflow's own cost of parsing a
DAG file, the yardstick ``bench/parse.py`` sets each use case's file against."""

import pendulum
from airflow.sdk import dag, task


@dag(schedule="0 0 * * *", start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False)
def minimal_taskflow() -> None:
    @task
    def hello() -> str:
        return "hello"

    hello()


minimal_taskflow()
