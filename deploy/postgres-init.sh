#!/bin/sh
# Runs once, when the postgres volume is new: one role and one database each for MLflow and
# Prefect (passwords from the compose environment).
set -eu
psql -v ON_ERROR_STOP=1 --username postgres <<SQL
CREATE ROLE mlflow LOGIN PASSWORD '${MLFLOW_DB_PASSWORD}';
CREATE DATABASE mlflow OWNER mlflow;
CREATE ROLE prefect LOGIN PASSWORD '${PREFECT_DB_PASSWORD}';
CREATE DATABASE prefect OWNER prefect;
SQL
