"""Service-wide configuration derived from the project's Settings."""
