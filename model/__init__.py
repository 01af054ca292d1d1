"""The continual tiny transformer: data, network, strategies, training, evaluation, checkpoints (Airflow-free)."""
