"""IoT security testbed: emulated IP-based IoT buildings for security protocol experiments."""

__version__ = "0.1.0"
