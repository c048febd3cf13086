"""Local stand-ins for services that cannot run in tests (the Slack Web API)."""
