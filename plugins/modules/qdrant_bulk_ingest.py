#!/usr/bin/python
"""Ansible module: bulk-load records into a Qdrant collection over gRPC."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: qdrant_bulk_ingest
short_description: Bulk-load JSONL, CSV or Parquet records into a Qdrant collection with parallel gRPC senders
description:
  - Streams a local file or an C(s3://) object, derives deterministic point ids (a field, or a UUIDv5
    of a key field), checks every record against the collection and sends batches through parallel
    gRPC senders with retries. The same input loaded twice leaves the same points.
  - A bad record stops the load with its file and record number before anything after it is sent,
    unless O(dead_letter) is given. With O(checkpoint), an interrupted or failed load continues with
    O(resume=true).
  - The collection must exist (create it with M(qdrant_ops.qdrant.qdrant_collection) first).
  - Runs with an interpreter that can import the C(qdrant_ops) package (with C(pyarrow) for Parquet),
    on the controller or a loader host that reaches the nodes' REST and gRPC ports.
  - In check mode nothing is sent; the module checks the collection, the source and the mapping and
    reports what it would load.
options:
  collection:
    description: Target collection.
    type: str
    required: true
  source:
    description: Path or C(s3://bucket/key) of a C(.jsonl), C(.csv) or C(.parquet) file.
    type: str
    required: true
  format:
    description: Input format; by default taken from the file name.
    type: str
    choices: [jsonl, csv, parquet]
  id_field:
    description: Field holding an unsigned integer or UUID point id.
    type: str
    default: id
  id_from:
    description: Derive a UUIDv5 id from this field instead of O(id_field).
    type: str
  id_namespace:
    description: UUID namespace for O(id_from); the default is fixed, so ids never change between runs.
    type: str
  vectors:
    description:
      - Collection vector name to source field (dotted paths reach into objects); use the empty name
        for the unnamed vector. Default C(vector) for the unnamed vector, C(vector.<name>) for named ones.
    type: dict
  vector_files:
    description: Collection vector name to a rows x dim C(.npy) file holding the vectors in record order.
    type: dict
  payload_fields:
    description: Payload fields; default the record's C(payload) object, else every field but the id and vectors.
    type: list
    elements: str
  batch_size:
    description: Points per request.
    type: int
    default: 512
  in_flight:
    description: Batches queued per sender.
    type: int
    default: 2
  workers:
    description: Parallel gRPC senders; default the number of CPUs of the host running the module.
    type: int
  decoders:
    description: Processes that parse, check and encode records; default the number of CPUs.
    type: int
  retries:
    description: Retries per batch on transient errors (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED).
    type: int
    default: 8
  grpc_port:
    description: Qdrant gRPC port.
    type: int
    default: 6334
  ordering:
    description: Write ordering guarantee.
    type: str
    choices: [weak, medium, strong]
    default: weak
  dead_letter:
    description: Append records that cannot be loaded to this JSONL file instead of stopping.
    type: path
  checkpoint:
    description: File that records the completed record ranges.
    type: path
  resume:
    description: Skip the ranges O(checkpoint) holds.
    type: bool
    default: false
  defer_indexing:
    description: Set C(indexing_threshold) to 0 for the load and restore it afterwards, also after a failure.
    type: bool
    default: false
  indexing_threshold:
    description: Value to set after a deferred load (default the value before it).
    type: int
  wait_green:
    description: Wait for the collection to turn green after the load.
    type: bool
    default: false
  verify:
    description: Check at the end that the collection holds what was sent (exact count, sampled ids).
    type: bool
    default: true
  s3_endpoint_url:
    description: S3 endpoint for C(s3://) sources (default AWS; credentials from the usual AWS chain).
    type: str
  s3_region:
    description: S3 region for C(s3://) sources.
    type: str
extends_documentation_fragment:
  - qdrant_ops.qdrant.qdrant_module
  - qdrant_ops.qdrant.qdrant_connection
  - ansible.builtin.action_common_attributes
author: qdrant-ops team (@qdrant-ops)
version_added: 0.1.0
"""

EXAMPLES = r"""
- name: Load a million records, resumable
  qdrant_ops.qdrant.qdrant_bulk_ingest:
    url: "{{ qdrant_rest_urls }}"
    api_key: "{{ qdrant_api_key }}"
    collection: cities
    source: s3://my-datasets/cities.parquet
    checkpoint: /var/tmp/cities.checkpoint.json
    resume: "{{ resume | default(false) }}"
    defer_indexing: true

- name: Payload-only records, ids derived from a key
  qdrant_ops.qdrant.qdrant_bulk_ingest:
    url: ["http://10.0.1.10:6333"]
    api_key: "{{ qdrant_api_key }}"
    collection: places
    source: /data/places.jsonl
    id_from: city
    dead_letter: /data/places.rejected.jsonl
"""

RETURN = r"""
read:
  description: Records read from the source in this run (not counting those a resume skipped).
  returned: success
  type: int
skipped:
  description: Records skipped because the checkpoint holds them.
  returned: success
  type: int
written:
  description: Points written.
  returned: success
  type: int
batches:
  description: Requests sent.
  returned: success
  type: int
retries:
  description: Requests repeated after transient errors.
  returned: success
  type: int
failed:
  description: Records sent to the dead-letter file.
  returned: success
  type: int
seconds:
  description: Duration of the load.
  returned: success
  type: float
points_per_second:
  description: Points written per second.
  returned: success
  type: float
verified:
  description: The final check (exact count and sampled ids) of what the collection holds.
  returned: success
  type: dict
  sample: {"ok": true, "count": 1000000, "expected": 1000000, "missing_sample": []}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.qdrant_ops.qdrant.plugins.module_utils.qdrant_common import (
    CONNECTION_ARGUMENT_SPEC,
    run_module,
)

try:
    from qdrant_ops.backup import s3
    from qdrant_ops.ingest import engine, sources
    from qdrant_ops.ingest.options import load_plan
except ImportError:
    pass  # run_module reports the missing library before any use


ARGUMENT_SPEC = {
    **CONNECTION_ARGUMENT_SPEC,
    "collection": {"type": "str", "required": True},
    "source": {"type": "str", "required": True},
    "format": {"type": "str", "choices": ["jsonl", "csv", "parquet"]},
    "id_field": {"type": "str", "default": "id"},
    "id_from": {"type": "str"},
    "id_namespace": {"type": "str"},
    "vectors": {"type": "dict"},
    "vector_files": {"type": "dict"},
    "payload_fields": {"type": "list", "elements": "str"},
    "batch_size": {"type": "int", "default": 512},
    "in_flight": {"type": "int", "default": 2},
    "workers": {"type": "int"},
    "decoders": {"type": "int"},
    "retries": {"type": "int", "default": 8},
    "grpc_port": {"type": "int", "default": 6334},
    # The library's wire.ORDERINGS, spelled out for the documentation checks (a test holds them equal).
    "ordering": {"type": "str", "choices": ["weak", "medium", "strong"], "default": "weak"},
    "dead_letter": {"type": "path"},
    "checkpoint": {"type": "path"},
    "resume": {"type": "bool", "default": False},
    "defer_indexing": {"type": "bool", "default": False},
    "indexing_threshold": {"type": "int"},
    "wait_green": {"type": "bool", "default": False},
    "verify": {"type": "bool", "default": True},
    "s3_endpoint_url": {"type": "str"},
    "s3_region": {"type": "str"},
}


def _check(client, params: dict, mapping, s3_factory) -> dict:
    """Check mode: the collection, source, mapping and first record, nothing sent."""
    _info, dims, mapping, source = engine.prepare(
        client,
        params["collection"],
        params["source"],
        mapping,
        fmt=params["format"],
        s3_client_factory=s3_factory,
    )
    try:
        decoder = sources.Decoder(mapping, dims, source.location)
        first = next(source.rows(), None)
        if first is not None and not mapping.vector_files:
            decoder.decode(*first)
        return {"source_format": source.format, "source_bytes": source.size, "records": source.total_records}
    finally:
        source.close()


def load(module, client) -> dict:
    params = module.params
    settings = s3.S3Settings(bucket="-", endpoint_url=params["s3_endpoint_url"], region=params["s3_region"])

    def s3_factory():
        return s3.make_client(settings)

    options, mapping = load_plan(params)
    if module.check_mode:
        return {
            "changed": True,
            "collection": params["collection"],
            **_check(client, params, mapping, s3_factory),
        }
    report = engine.ingest(
        client, params["source"], options, mapping, fmt=params["format"], s3_client_factory=s3_factory
    )
    return {"changed": report["written"] > 0, **report}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC, mutually_exclusive=[("id_field", "id_from")], supports_check_mode=True
    )
    run_module(module, load)


if __name__ == "__main__":
    main()
