# Data validation (issue #3): runbook "Analyze Data Quality" -> `make validate-data`, `make analyze-data`.
.PHONY: validate-data analyze-data bench-validation retract-batch

validate-data: venv ## validate every new file in the landing zone (GX suite); exit 1 if any file is rejected
	@$(PY) -m include.airflow_glue.landing_s3 validate

retract-batch: venv ## retract a validated batch not learned yet (FILE=task_2.csv): moved to quarantine, out of index + manifest
	@test -n "$(FILE)" || { echo "usage: make retract-batch FILE=task_2.csv" >&2; exit 2; }
	@$(PY) -m include.airflow_glue.landing_s3 retract "$(FILE)"

analyze-data: venv ## data-quality report per task (class counts, feature stats, drift): table + JSON + PNG
	@$(PY) scripts/analyze_data_quality.py

bench-validation: venv ## validation throughput on a 100k-row batch -> bench/results/validation.json
	@mkdir -p bench/results
	@$(PY) -m bench.bench_validation
