"""The MLflow-compatible model registry API, served at /mlflow/api/2.0/mlflow/ (see views)."""
