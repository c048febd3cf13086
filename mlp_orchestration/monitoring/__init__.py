"""Monitoring of live models: data and score drift, delayed-label performance, serving health.

Nothing here imports Evidently at module import: it takes about three seconds to import, and the
scoring service and the Dagster definitions load this package. The functions that need it import
it when called.
"""
