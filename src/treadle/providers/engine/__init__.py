"""What the Docker and Swarm providers share: reaching an engine, the Compose-style spec,
job runs and the engine's events. Neither provider imports the other."""
