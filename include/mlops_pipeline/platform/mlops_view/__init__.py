"""The MLOps view inside Airflow's UI: each model's state where the pipeline's state already is.

A FastAPI app (``app``) that ``plugins/mlops_view_plugin.py`` mounts in Airflow's api-server
under ``/mlops`` and links from the UI's navigation. It reads the same state as
``mlops-pipeline status`` (``status.platform_status``) and adds what a person needs beside it
(``state``): the decision records with every gate, links to the Evidently drift reports, the
Data Docs and the champion's model card (``files``), to the MLflow UI and to Airflow's runs
(``links``), the drift nights in full (``history``), the last scored partitions and the live
shadow (``scored``). Every declared use case has its pages (``picker``, ``page``,
``sections``); names, metrics and labels come from its declaration. Charts are plotly.js
figures (``charts``) drawn by the plotly.js the view serves itself; Markdown documents are
rendered by markdown-it (``documents``).

- ``GET /mlops/`` the use-case picker; ``GET /mlops/api/usecases`` the same as JSON.
- ``GET /mlops/<usecase>/`` a use case's page; ``GET /mlops/api/<usecase>/status`` as JSON.
- ``GET /mlops/<usecase>/reports/<path>`` files under ``MLOPS_HOME/reports`` (Data Docs, drift
  reports, decision records); nothing outside it.
- ``GET /mlops/<usecase>/model-card/<version>/<file>`` a version's model card (HTML, Markdown,
  SHAP plot) from its MLflow run.
- ``GET /mlops/<usecase>/documents/<path>.md`` a Markdown file under ``reports`` (a decision
  record) rendered as HTML.
- ``GET /mlops/static/plotly-<version>.min.js`` the installed plotly's plotly.js (cached).

Every route requires a logged-in Airflow user: Airflow's own ``requires_access_view``
dependency reads the JWT from the ``Authorization: Bearer`` header or the UI's cookie, so an
anonymous request gets 401 (403 for an invalid token). An undeclared use case is a 404.

Importing these modules is cheap (every Airflow process loads plugins, task runners included):
FastAPI and Airflow's API security are imported when the api-server first routes a request.
"""
