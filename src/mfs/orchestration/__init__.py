"""Prefect orchestration helpers: the local Prefect stack (server, workers), deployment setup,
alerts, run locks, market gating and run artifacts. Flows in ``flows/`` stay thin and call these."""
