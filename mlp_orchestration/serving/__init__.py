"""The scoring service: FastAPI app, routing follower, canary and shadow scoring, prediction log.

Start it with ``mlp serve``; ``create_app`` in ``app.py`` builds the ASGI app.
"""
