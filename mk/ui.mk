# Seen from the user's seat (issue #7): terminal status, the Airflow UI with the continual-learning view,
# the MLflow UI. Every target runs on the project's own state (var/ unless CT_*/MLFLOW_TRACKING_URI say else).
.PHONY: status history export-state airflow-ui mlflow-ui

AIRFLOW_UI_PORT ?= 8080
MLFLOW_UI_PORT ?= 5000
CLI_ARGS ?=
# Resolved only when a recipe uses them (recursive `=`), so other targets do not import the project.
MLFLOW_URI = $(shell $(PY) -c 'from include.ops.settings import get_settings; print(get_settings().mlflow_tracking_uri)')
MLFLOW_ARTIFACTS = $(shell $(PY) -c 'from include.ops.settings import get_settings as g; print((g().var_dir / "mlflow" / "artifacts").as_uri())')

status: venv ## accuracy matrix + retention of the latest run, coloured vs 0.8 (CLI_ARGS="--no-color|--json|--check")
	@$(PY) -m include.ops.cli status $(CLI_ARGS)

history: venv ## one line per learned task: accuracies, mean retention, model version, aliases (CLI_ARGS="--limit N")
	@$(PY) -m include.ops.cli history $(CLI_ARGS)

export-state: venv ## write state, history and every run's accuracy matrix to var/reports/continual_state (progress bar)
	@$(PY) -m include.ops.cli export $(CLI_ARGS)

airflow-ui: venv ## Airflow UI (airflow standalone) on the project's state, with the "Continual learning" view
	@mkdir -p $(AIRFLOW_HOME)
	@echo "==> Airflow UI        http://127.0.0.1:$(AIRFLOW_UI_PORT)"
	@echo "    user admin, password in $(AIRFLOW_HOME)/simple_auth_manager_passwords.json.generated"
	@echo "    (printed below on the first start only)"
	@echo "==> Continual learning http://127.0.0.1:$(AIRFLOW_UI_PORT)/plugin/continual-learning"
	@echo "    (nav entry 'Continual learning'; JSON at /ct/api/state, raw page at /ct/view)"
	@echo "==> Its MLflow links go to $${CT_MLFLOW_UI_URL:-http://127.0.0.1:$(MLFLOW_UI_PORT)}: run 'make mlflow-ui' too"
	@echo "==> New DAGs start paused; the trigger form unpauses on trigger. Ctrl-C stops everything."
	@AIRFLOW__API__PORT=$(AIRFLOW_UI_PORT) \
	  AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://localhost:$(AIRFLOW_UI_PORT)/execution/ \
	  CT_MLFLOW_UI_URL=$${CT_MLFLOW_UI_URL:-http://127.0.0.1:$(MLFLOW_UI_PORT)} \
	  airflow standalone

mlflow-ui: venv ## MLflow UI on the project's tracking store (port MLFLOW_UI_PORT, default 5000)
	@$(PY) -c 'import pathlib, sys; u = sys.argv[1]; u.startswith("sqlite:///") and pathlib.Path(u[10:]).parent.mkdir(parents=True, exist_ok=True)' "$(MLFLOW_URI)"
	@echo "==> MLflow UI http://127.0.0.1:$(MLFLOW_UI_PORT)  (store $(MLFLOW_URI))"
	@$(VENV)/bin/mlflow ui --backend-store-uri "$(MLFLOW_URI)" --default-artifact-root "$(MLFLOW_ARTIFACTS)" \
	  --host 127.0.0.1 --port $(MLFLOW_UI_PORT)
