"""The cost plan of a run (`rlbind-bench run --plan`): passes, FLOPs and time per cell, before running it."""

from rlbind_bench.plan.build import CostPlan, plan_run

__all__ = ["CostPlan", "plan_run"]
