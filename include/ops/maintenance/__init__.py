"""Maintenance checks (daily, weekly, monthly) and their reports; Airflow-free, called by the DAGs."""
