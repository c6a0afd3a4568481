"""qdrant_ops: operate a distributed Qdrant cluster."""

__version__ = "0.1.0"
