"""Every Airflow Asset of the project, defined once; producers use them as outlets, consumers as schedules."""

from airflow.sdk import Asset

VALIDATED_BATCH = Asset(name="validated_task_batch", uri="file://continual-transformer/validated")
CHECKPOINT = Asset(name="model_checkpoint", uri="file://continual-transformer/checkpoints")
