"""``qkv serve``: a live local explorer of a model's attention (FastAPI + uvicorn)."""

from qkv.serve.app import create_app

__all__ = ["create_app"]
