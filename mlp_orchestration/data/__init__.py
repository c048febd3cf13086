"""Datasets: loading public data, verifying it and writing it to the warehouse."""
