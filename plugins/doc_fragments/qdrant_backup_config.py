"""Options of the modules that read the backup config (qdrant_snapshot, qdrant_restore): each
overrides the same key of O(config_file)."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  config_file:
    description: Backup config on the host running the module, e.g. C(/etc/qdrant-ops/backup.yml).
    type: path
  cluster:
    description: Cluster name used in the S3 keys.
    type: str
  node:
    description:
      - Name this node writes its part of a set under (C(<backup_id>/nodes/<node>/)); unique per node.
      - Default C(peer-<peer id>); the qdrant_backup role writes the inventory name, which is what the
        node's IAM role allows.
    type: str
  url:
    description: This host's Qdrant node.
    type: str
  api_key:
    description: Qdrant API key.
    type: str
  ca_cert:
    description: CA bundle that signed the node's certificate.
    type: path
  validate_certs:
    description: Verify TLS certificates.
    type: bool
  timeout:
    description: Seconds per Qdrant request.
    type: float
  s3_bucket:
    description: Backup bucket.
    type: str
  s3_prefix:
    description: Key prefix in the bucket.
    type: str
  s3_region:
    description: Bucket region.
    type: str
  s3_endpoint_url:
    description: S3 endpoint for services other than AWS S3 (tests use a moto server).
    type: str
  s3_access_key:
    description: Access key; leave unset on EC2, where the instance profile provides credentials.
    type: str
  s3_secret_key:
    description: Secret key, with O(s3_access_key).
    type: str
  part_size_mib:
    description: Multipart part size in MiB (at least 5).
    type: int
  concurrency:
    description: Parts transferred in parallel.
    type: int
"""
