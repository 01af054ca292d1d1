# Data validation (issue #3): runbook "Analyze Data Quality" -> `make validate-data`, `make analyze-data`.
.PHONY: validate-data analyze-data bench-validation

validate-data: venv ## validate every new file in the landing zone (GX suite); exit 1 if any file is rejected
	@$(PY) -m include.airflow_glue.landing_s3 validate

analyze-data: venv ## data-quality report per task (class counts, feature stats, drift): table + JSON + PNG
	@$(PY) scripts/analyze_data_quality.py

bench-validation: venv ## validation throughput on a 100k-row batch -> bench/results/validation.json
	@mkdir -p bench/results
	@$(PY) -m bench.bench_validation
