-- The warehouse uses the default database (mlp); MLflow and Dagster get their own.
CREATE DATABASE mlflow OWNER mlp;
CREATE DATABASE dagster OWNER mlp;
