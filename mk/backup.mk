# Backup and recovery (issue #4): runbook "Backup and Recovery" -> docs/backup-recovery.md.
# backup_models.sh + backup_database.sh -> make backup; restore_model.sh -> make restore BACKUP=<id>;
# disaster_recovery.sh -> DAG disaster_recovery (drill: make dr-drill); step 3 -> make test-validation.
BACKUP_CLI := $(PY) -m include.airflow_glue.backup_cli
BACKUP ?=
SOURCE ?= local
DRY_RUN ?=

.PHONY: backup restore restore-dry-run dr-drill test-validation list-backups verify-backup cleanup-backups unlock bench-backup

backup: venv ## back up checkpoints, MLflow store + artifacts, config (no secrets) and verify; S3 too with s3_backup
	@$(BACKUP_CLI) backup

restore: venv ## restore a backup into the live state: make restore BACKUP=<id>|latest [SOURCE=s3]
	@test -n "$(BACKUP)" || { echo "usage: make restore BACKUP=<id>|latest [SOURCE=local|s3] (make list-backups)"; exit 2; }
	@$(BACKUP_CLI) restore --backup-id $(BACKUP) --source $(SOURCE)

restore-dry-run: venv ## verify + stage a backup and print what a restore would change, touch nothing
	@$(BACKUP_CLI) restore --dry-run --backup-id $(or $(BACKUP),latest) --source $(SOURCE)

dr-drill: venv ## restore the latest backup into scratch, validate it, report RTO/RPO (live state untouched)
	@$(BACKUP_CLI) drill --backup-id $(or $(BACKUP),latest) --source $(SOURCE)

test-validation: venv ## runbook step 3: restored checkpoints, MLflow aliases and accuracies match the backup
	@$(BACKUP_CLI) validate --source $(SOURCE)

list-backups: venv ## list backups (complete or not) [SOURCE=s3]
	@$(BACKUP_CLI) list --source $(SOURCE)

verify-backup: venv ## re-read a backup and check every checksum: make verify-backup [BACKUP=<id>] [SOURCE=s3]
	@$(BACKUP_CLI) verify --backup-id $(or $(BACKUP),latest) --source $(SOURCE)

cleanup-backups: venv ## keep 10 checkpoints, GFS backups (7/4/12), logs < 30 days; DRY_RUN=1 only lists
	@$(BACKUP_CLI) cleanup $(if $(DRY_RUN),--dry-run,)

unlock: venv ## release a stuck maintenance lock (after a failed recovery has been dealt with)
	@$(BACKUP_CLI) lock --release --force

bench-backup: venv ## backup throughput vs a plain copy, restore time -> bench/results/backup.json
	@mkdir -p bench/results
	@$(PY) -m bench.bench_backup
