"""Prefect flows: orchestration only (no SQL, no maths) — each step calls a function of src/mfs."""
