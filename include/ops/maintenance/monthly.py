"""Monthly checks (runbook "Monthly Tasks"), one module per check; the ``maintenance_monthly`` DAG runs these.

- ``security``: security audit (bandit, literal secrets in config files, folder permissions)
- ``capacity``: capacity planning (growth, days until the disk is full, GPU headroom)
- ``performance``: performance review (batch-size throughput, the optimization checklist)
- ``docs_audit``: documentation check (DAGs, make targets and endpoints in the README's runbook map)
"""

from __future__ import annotations

from include.ops.maintenance.capacity import capacity_planning
from include.ops.maintenance.docs_audit import app_endpoints, dag_ids, documentation_check, make_targets
from include.ops.maintenance.performance import performance_review
from include.ops.maintenance.security import security_audit

__all__ = [
    "app_endpoints",
    "capacity_planning",
    "dag_ids",
    "documentation_check",
    "make_targets",
    "performance_review",
    "security_audit",
]
