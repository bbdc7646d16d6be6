"""The plan: a pure function of (topology, run name) that says exactly what will run."""

from testbed.plan.model import NetworkPlan, NodePlan, Plan
from testbed.plan.planner import make_plan

__all__ = ["NetworkPlan", "NodePlan", "Plan", "make_plan"]
