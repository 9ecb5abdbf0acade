# Airflow with ect's DAGs and the packages its non-training tasks need (validation, aggregation).
# Training runs in the worker image (docker/Dockerfile) through the docker runner.
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_IMAGE}
COPY docker/requirements-airflow.txt /opt/ect-build/
RUN pip install --no-cache-dir -r /opt/ect-build/requirements-airflow.txt
COPY --chown=airflow:0 pyproject.toml README.md /opt/ect-src/
COPY --chown=airflow:0 ect /opt/ect-src/ect
RUN pip install --no-cache-dir --no-deps /opt/ect-src
