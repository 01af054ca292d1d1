"""Supporting files and the Airflow-free operations library of the project."""
