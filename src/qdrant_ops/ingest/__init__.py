"""Bulk ingest: sources (files to records), wire (records to gRPC batches), workers (the decoder and
sender processes), engine (a run: checkpoints, dead letters, progress, the report), and dataset
(the deterministic sample data)."""
