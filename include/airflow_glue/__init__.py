"""Airflow glue: the only package besides dags/ and plugins/ that imports airflow."""
