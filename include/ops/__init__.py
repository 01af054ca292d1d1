"""Operations library: settings, tracking, validation, backup and maintenance logic (no Airflow imports)."""
