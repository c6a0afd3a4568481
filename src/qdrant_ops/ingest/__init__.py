"""Bulk ingest: sources (files to records), wire (records to gRPC batches), messages (what the
processes tell each other), workers (the decoder and sender processes), pool (the parent's handle on
them), checkpoint, engine (a run: dispatch, dead letters, progress, the report), and dataset (the
deterministic sample data)."""
