# syntax=docker/dockerfile:1
# Images of the production stack (docker-compose.yaml), from one build context:
#   airflow       the official Airflow image + this platform (api-server, scheduler, workers)
#   mlflow        the MLflow tracking server with basic auth (deploy/mlflow/start-server.sh)
#   model-server  python:3.11-slim with only what `mlops-pipeline serve` needs, non-root
# Every target installs the pins of requirements.txt (compiled together with
# apache-airflow==3.3.2, so they are this platform's constraints; no other constraints file).
# The steps that download see deploy/build-certs as a bind mount: a build machine whose HTTPS
# goes through a proxy puts its CA bundle there (git-ignored, in no layer); elsewhere it is
# unused. Where no registry can be pulled from, deploy/local/build-images.sh builds the base
# images (AIRFLOW_IMAGE, PYTHON_IMAGE) and these targets here.

ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${AIRFLOW_IMAGE} AS airflow
# Named volumes take their owner from the image's directory: the platform's data and the
# auth manager's password file belong to the airflow user.
USER root
RUN mkdir -p /opt/mlops/data /opt/airflow/auth && chown -R airflow:0 /opt/mlops /opt/airflow/auth
USER airflow
WORKDIR /opt/mlops-pipeline
COPY --chown=airflow:0 requirements.txt ./
RUN --mount=type=bind,source=deploy/build-certs,target=/run/build-certs \
    /run/build-certs/with-ca.sh pip install --no-cache-dir -r requirements.txt
COPY --chown=airflow:0 pyproject.toml README.md ./
COPY --chown=airflow:0 include ./include
RUN --mount=type=bind,source=deploy/build-certs,target=/run/build-certs \
    /run/build-certs/with-ca.sh pip install --no-cache-dir --no-deps .
COPY --chown=airflow:0 feature_repo ./feature_repo
COPY --chown=airflow:0 usecases ./usecases
COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins
ENV MLOPS_PROFILE=production \
    MLOPS_HOME=/opt/mlops/data \
    MLOPS_FEATURE_REPO=/opt/mlops-pipeline/feature_repo \
    MLOPS_USECASES_DIR=/opt/mlops-pipeline/usecases \
    FEAST_REPO_PATH=/opt/mlops-pipeline/feature_repo \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/airflow/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/airflow/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False
WORKDIR /opt/airflow

FROM ${PYTHON_IMAGE} AS python-base
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The same uid as Airflow's image (50000, group 0), so both can share the data volume.
RUN useradd --uid 50000 --gid 0 --create-home --home-dir /home/mlops mlops \
    && mkdir -p /opt/mlops/data /opt/mlops/mlflow-artifacts \
    && chown -R 50000:0 /opt/mlops
WORKDIR /opt/mlops-pipeline
COPY requirements.txt requirements-serving.in ./

FROM python-base AS mlflow
RUN --mount=type=bind,source=deploy/build-certs,target=/run/build-certs \
    /run/build-certs/with-ca.sh pip install -c requirements.txt "mlflow[auth]" psycopg2-binary
COPY deploy/mlflow/start-server.sh /usr/local/bin/start-mlflow-server
USER mlops
EXPOSE 5000
ENTRYPOINT ["/usr/local/bin/start-mlflow-server"]

FROM python-base AS model-server
RUN --mount=type=bind,source=deploy/build-certs,target=/run/build-certs \
    /run/build-certs/with-ca.sh pip install -c requirements.txt -r requirements-serving.in
COPY pyproject.toml README.md ./
COPY include ./include
RUN --mount=type=bind,source=deploy/build-certs,target=/run/build-certs \
    /run/build-certs/with-ca.sh pip install --no-deps .
COPY feature_repo ./feature_repo
COPY usecases ./usecases
# One server process per use case: compose runs one container per use case (MLOPS_USECASE).
ENV MLOPS_PROFILE=production \
    MLOPS_HOME=/opt/mlops/data \
    MLOPS_FEATURE_REPO=/opt/mlops-pipeline/feature_repo \
    MLOPS_USECASES_DIR=/opt/mlops-pipeline/usecases
USER mlops
EXPOSE 8080
CMD ["mlops-pipeline", "serve", "--host", "0.0.0.0", "--port", "8080"]
