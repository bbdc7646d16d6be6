"""Experiments as code: scenario files, their runner, and the reports they produce.

scenarios/*.yaml --load--> Scenario (schema) --runner--> steps (through `adapter`, the same
use cases the CLI calls) --> Results --> junit.xml, results.json, report.html
"""

from testbed.scenario.loader import load_scenario, parse_scenario
from testbed.scenario.schema import Scenario

__all__ = ["Scenario", "load_scenario", "parse_scenario"]
