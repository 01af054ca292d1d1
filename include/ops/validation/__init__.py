"""Data validation of task batches: pre-checks, the committed Great Expectations suite, store and quarantine.

Entry points: :func:`include.ops.validation.pipeline.validate_landed_file` (one file),
:func:`include.ops.validation.pipeline.validate_landing_zone` (every new file), and
:func:`include.ops.validation.landing.land_task_stream` (feed a task stream into the landing zone).
Importing this package is cheap: pandas and Great Expectations load only when a batch is validated.
"""
