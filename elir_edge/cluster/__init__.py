"""Past one machine: the commands' `--ray` runs their per-image work on a Ray cluster (Ray Data)."""
