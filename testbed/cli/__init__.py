"""The `testbed` command: thin verbs that parse, call the use cases, and render with rich."""
