# Deployment and scale-out (issue #6): runbook "Deployment Procedures", "GPU Environment Deployment",
# "Configuration Management", "Performance Tuning", "System Performance". See docs/deployment.md.
ENV_FILE ?= .env
COMPOSE ?= docker-compose
COMPOSE_FILES := -f docker-compose.yml
ROLLBACK_FILES := -f docker-compose.yml -f docker-compose.rollback.yml

.PHONY: deploy-env check-config validate-config config-backup config-apply test-smoke test-deploy \
	deploy deploy-gpu deploy-monitoring deploy-logging rollback \
	profile-training profile-inference optimize-batch-size monitor-resources

deploy-env: venv ## create/complete .env from .env.example, generating every secret (mode 0600)
	@$(PY) -m include.ops.config_check generate --env-file $(ENV_FILE)

check-config: venv ## validate .env, the environment, docker-compose files, Prometheus config/rules, DAG imports
	@$(PY) -m include.ops.config_check check --env-file $(ENV_FILE) --expect-dag continual_training

validate-config: venv ## quick check after editing .env: env file, environment, compose files, Prometheus
	@$(PY) -m include.ops.config_check check --env-file $(ENV_FILE) --skip dags

config-backup: venv ## copy $(ENV_FILE) to $(ENV_FILE).backup.<timestamp>
	@$(PY) -m include.ops.config_check backup --env-file $(ENV_FILE)

config-apply: venv ## FILE=new.env: validate it, back up $(ENV_FILE), then replace it (no change on any problem)
	@test -n "$(FILE)" || (echo "usage: make config-apply FILE=path/to/new.env"; exit 2)
	@$(PY) -m include.ops.config_check apply $(FILE) --env-file $(ENV_FILE)

test-smoke: venv ## smoke tests against the running stack (URLs: CT_SMOKE_*_URL, defaults localhost)
	@$(PY) scripts/smoke_test.py

test-deploy: venv system-deps ## the deployment tests: compose, Celery scale-out, smoke, config, perf scripts
	@$(VENV)/bin/pytest tests/integration/deploy

deploy: check-config ## production deploy (runbook): build/pull, up -d, wait healthy, smoke tests
	$(COMPOSE) $(COMPOSE_FILES) pull --ignore-pull-failures
	$(COMPOSE) $(COMPOSE_FILES) build
	$(COMPOSE) $(COMPOSE_FILES) up -d
	@$(PY) scripts/smoke_test.py --wait 300

deploy-gpu: check-config ## + the GPU Celery worker (set CT_TRAINING_QUEUE=gpu in .env)
	$(COMPOSE) $(COMPOSE_FILES) --profile gpu up -d
	docker exec continual-transformer-gpu python -c "import torch; print('cuda:', torch.cuda.is_available())"

deploy-monitoring: ## Prometheus, Pushgateway, Grafana (http://localhost:3000)
	$(COMPOSE) $(COMPOSE_FILES) --profile monitoring up -d prometheus pushgateway grafana

deploy-logging: ## Elasticsearch, Logstash, Kibana (http://localhost:5601)
	$(COMPOSE) $(COMPOSE_FILES) --profile logging up -d elasticsearch logstash kibana

rollback: ## runbook "Rollback Procedure": the previous release (CT_PREVIOUS_IMAGE_TAG), then smoke tests
	$(COMPOSE) $(COMPOSE_FILES) down
	$(COMPOSE) $(ROLLBACK_FILES) up -d --no-build
	@$(PY) scripts/smoke_test.py --wait 300

profile-training: venv ## cProfile + torch profiler of one task -> var/reports/profiles/
	@$(PY) scripts/profile_training.py

profile-inference: venv ## latency per batch size, cProfile + torch profiler -> var/reports/profiles/
	@$(PY) scripts/profile_inference.py

optimize-batch-size: venv ## throughput per batch size and a recommendation -> var/reports/profiles/
	@$(PY) scripts/optimize_batch_size.py

monitor-resources: venv ## psutil snapshot + py-spy dump of the serving app (MATCH=... to pick another process)
	@$(PY) scripts/monitor_resources.py --match "$(or $(MATCH),include.serving)"
