# Operations (issue #5): runbook "Monitoring and Alerting", "Incident Response", "Maintenance Tasks",
# "Inference Performance" -> docs/operations.md. health = the runbook's scripts/maintenance/health_check.sh.
APP_URL ?= $(or $(CT_APP_URL),http://127.0.0.1:8000)
WEBHOOK_URL ?=
PROMTOOL ?= promtool
MONITORING := include/monitoring

.PHONY: chaos serve health promtool-test bench-serving maintenance-daily maintenance-weekly maintenance-monthly

serve: venv ## serve the champion model on :8000 (/predict, /health*, /metrics, /api/*); CT_API_TOKEN for /api writes
	@$(PY) -m include.serving

health: ## runbook health_check.sh: fail (and POST to WEBHOOK_URL when set) unless APP_URL/health/all answers 2xx
	@curl -fsS "$(APP_URL)/health/all" > /dev/null || { \
	  echo "Health check failed at $$(date)"; \
	  if [ -n "$(WEBHOOK_URL)" ]; then curl -fsS -X POST -H 'Content-Type: application/json' \
	    -d '{"text": "Health check failed"}' "$(WEBHOOK_URL)" > /dev/null || echo "alert webhook failed"; fi; \
	  exit 1; }
	@echo "Health check passed at $$(date)"

promtool-test: system-deps ## promtool check config + rules, and the alert unit tests (both sides of every for:)
	@$(PROMTOOL) check config $(MONITORING)/prometheus.yml
	@cd $(MONITORING)/alerts && $(PROMTOOL) test rules continual_transformer.rules.test.yml

bench-serving: venv ## /predict with dynamic batching vs naive, 32 clients -> bench/results/serving.json
	@mkdir -p bench/results
	@$(PY) -m bench.bench_serving

maintenance-daily: airflow-db ## run the maintenance_daily DAG now, in-process (health, logs, disk, backups)
	@airflow dags test maintenance_daily

maintenance-weekly: airflow-db ## run maintenance_weekly now (pip-audit, cleanup, trends + plot, DR drill)
	@airflow dags test maintenance_weekly

maintenance-monthly: airflow-db ## run maintenance_monthly now (security audit, capacity, performance, docs)
	@airflow dags test maintenance_monthly

chaos: venv ## hostile requests (39 kinds, 8 categories) against a running app + the training crash matrix, one table
	@$(PY) -m include.serving.chaos $(CHAOS_ARGS)
