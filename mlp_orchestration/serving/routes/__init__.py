"""HTTP routes: ``/v1`` scoring and model info, and the open health and metrics routes."""
