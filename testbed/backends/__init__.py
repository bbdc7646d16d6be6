"""Container backends: the Backend protocol, the Docker backend and node images."""
