# Seen from the user's seat (issue #7): terminal status, the Airflow UI with the continual-learning view,
# the MLflow UI. Every target runs on the project's own state (var/ unless CT_*/MLFLOW_TRACKING_URI say else).
# Servers for one person on one machine (issue #14): they listen on 127.0.0.1, and a second instance does not
# collide (free ports are picked by include/ops/local_ports.py).
.PHONY: status history alias-history rollback-model export-state airflow-ui mlflow-ui

# Airflow UI: AIRFLOW_UI_HOST (127.0.0.1; 0.0.0.0 serves other machines too), AIRFLOW_UI_PORT (empty: 8080
# when free, else any free port). Its log servers take AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT /
# AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT when set, else free ports.
AIRFLOW_UI_HOST ?= 127.0.0.1
AIRFLOW_UI_PORT ?=
UI_BIND_HOST = $(or $(strip $(AIRFLOW_UI_HOST)),127.0.0.1)
# MLflow UI: one knob for where it listens and where every link to it points (make status / history /
# export-state, the Airflow view): MLFLOW_UI_PORT. Set (make variable or environment), it sets
# CT_MLFLOW_UI_URL (Settings.mlflow_ui_url) for every target; unset, `make mlflow-ui` serves on the port of
# Settings.mlflow_ui_url (CT_MLFLOW_UI_URL, default http://127.0.0.1:5000). MLFLOW_UI_WORKERS: its uvicorn
# workers (1 serves one person and starts fastest; MLflow's default is 4).
ifdef MLFLOW_UI_PORT
export CT_MLFLOW_UI_URL := http://127.0.0.1:$(MLFLOW_UI_PORT)
endif
MLFLOW_UI_WORKERS ?= 1
CLI_ARGS ?=
# Resolved only when a recipe uses them (recursive `=`), so other targets do not import the project.
MLFLOW_URI = $(shell $(PY) -c 'from include.ops.settings import get_settings; print(get_settings().mlflow_tracking_uri)')
MLFLOW_ARTIFACTS = $(shell $(PY) -c 'from include.ops.settings import get_settings as g; print((g().var_dir / "mlflow" / "artifacts").as_uri())')
MLFLOW_UI_URL = $(shell $(PY) -c 'from include.ops.settings import get_settings; print(get_settings().mlflow_ui_url)')

status: venv ## accuracy matrix + retention of the latest run, coloured vs 0.8 (CLI_ARGS="--no-color|--json|--check")
	@$(PY) -m include.ops.cli status $(CLI_ARGS)

history: venv ## one line per learned task (accuracies, mean retention, version, aliases), then the last alias moves (CLI_ARGS="--limit N")
	@$(PY) -m include.ops.cli history $(CLI_ARGS)

alias-history: venv ## every move of champion/challenger (gate, approval, rollback, restore), oldest first (CLI_ARGS="--json|--limit N")
	@$(PY) -m include.ops.cli alias-history $(CLI_ARGS)

rollback-model: venv ## move champion back: to the previous champion of the alias history, or VERSION=n (gated or approved); REASON="..."
	@$(PY) -m include.ops.rollback $(if $(strip $(VERSION)),--version "$(strip $(VERSION))") --reason "$(or $(REASON),make rollback-model)"

export-state: venv ## write state, history and every run's accuracy matrix to var/reports/continual_state (progress bar)
	@$(PY) -m include.ops.cli export $(CLI_ARGS)

airflow-ui: venv ## Airflow UI (airflow standalone) on 127.0.0.1 and free ports, with the "Continual learning" view
	@mkdir -p $(AIRFLOW_HOME)
	@ports=$$($(PY) -m include.ops.local_ports free "$(or $(AIRFLOW_UI_PORT),~8080)" \
	    $${AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT:-0} $${AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT:-0}) || exit 1; \
	  set -- $$ports; \
	  case "$(UI_BIND_HOST)" in 0.0.0.0|::) reach=127.0.0.1 ;; *) reach="$(UI_BIND_HOST)" ;; esac; \
	  url=http://$$reach:$$1; \
	  echo "==> Airflow UI        $$url  (listening on $(UI_BIND_HOST); AIRFLOW_UI_HOST=0.0.0.0 for other machines)"; \
	  echo "    user admin, password in $(AIRFLOW_HOME)/simple_auth_manager_passwords.json.generated"; \
	  echo "    (printed below on the first start only)"; \
	  echo "==> Continual learning $$url/plugin/continual-learning"; \
	  echo "    (nav entry 'Continual learning'; JSON at /ct/api/state, raw page at /ct/view)"; \
	  echo "==> Its MLflow links go to $(MLFLOW_UI_URL): run 'make mlflow-ui' too"; \
	  echo "==> Log servers: worker :$$2, triggerer :$$3. New DAGs start paused; the trigger form unpauses"; \
	  echo "    on trigger. Ctrl-C stops everything."; \
	  AIRFLOW__API__HOST=$(UI_BIND_HOST) AIRFLOW__API__PORT=$$1 \
	  AIRFLOW__CORE__EXECUTION_API_SERVER_URL=$$url/execution/ \
	  AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=$$2 AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=$$3 \
	  exec airflow standalone

mlflow-ui: venv ## MLflow UI on 127.0.0.1, port MLFLOW_UI_PORT (else that of CT_MLFLOW_UI_URL, 5000); URL printed once it answers
	@$(PY) -c 'import pathlib, sys; u = sys.argv[1]; u.startswith("sqlite:///") and pathlib.Path(u[10:]).parent.mkdir(parents=True, exist_ok=True)' "$(MLFLOW_URI)"
	@port=$$($(PY) -m include.ops.local_ports mlflow-ui) || exit 1; \
	  echo "==> starting the MLflow UI on 127.0.0.1:$$port (store $(MLFLOW_URI)); Ctrl-C stops it"; \
	  ( $(PY) -m include.ops.local_ports wait http://127.0.0.1:$$port/ --timeout 300 --pid $$$$ \
	    && echo "==> MLflow UI http://127.0.0.1:$$port  (answering now)" ) & \
	  exec $(VENV)/bin/mlflow ui --backend-store-uri "$(MLFLOW_URI)" --default-artifact-root "$(MLFLOW_ARTIFACTS)" \
	    --host 127.0.0.1 --port $$port --workers $(MLFLOW_UI_WORKERS)
