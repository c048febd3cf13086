"""Dagster jobs, sensors and schedules, built per model spec."""
