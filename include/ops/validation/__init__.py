"""Data validation of task batches: pre-checks, the committed Great Expectations suite, store and quarantine.

Entry points: :func:`include.ops.validation.pipeline.validate_landed_file` (one file, stage by stage),
:func:`include.ops.validation.zone.validate_landing_zone` (every new file of a landing zone), and
:func:`include.ops.validation.landing.land_task_stream` (feed a task stream into the landing zone).
Airflow-free: the S3 landing zone's hook is injected by ``include.airflow_glue.landing_s3``.
Importing this package is cheap: pandas and Great Expectations load only when a batch is validated.
"""
