# The backup bucket: private, versioned, encrypted (SSE-KMS with a rotating key, or SSE-S3), TLS
# only, unfinished multipart uploads and old versions cleaned up, optional object lock.
locals {
  bucket_name = coalesce(var.backup_bucket_name, "${var.name}-qdrant-backups-${data.aws_caller_identity.current.account_id}")
  # Every key of this cluster's backups (qdrant-ops: <prefix>/<cluster>/<backup_id>/...).
  backup_key_prefix = "${var.backup_prefix}/${var.name}/"
  use_kms           = var.backup_encryption == "kms"
}

resource "aws_kms_key" "backup" {
  count                   = local.use_kms ? 1 : 0
  description             = "Qdrant backups of ${var.name}"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.backup_key[0].json
  tags                    = local.tags
}

resource "aws_kms_alias" "backup" {
  count         = local.use_kms ? 1 : 0
  name          = "alias/${var.name}-qdrant-backups"
  target_key_id = aws_kms_key.backup[0].key_id
}

# The account administers the key (IAM policies decide who uses it); the nodes' roles and the
# monitoring host's (which prunes) may use it only through S3 in this region.
data "aws_iam_policy_document" "backup_key" {
  #checkov:skip=CKV_AWS_109:A key policy's resource "*" means this key only; the account-root statement is AWS's default key policy, so IAM policies decide who administers the key.
  #checkov:skip=CKV_AWS_111:Same key policy: "*" is this key; writes are limited to the account and the nodes' role via S3.
  #checkov:skip=CKV_AWS_356:Same key policy: a key policy cannot name the key's own ARN, "*" is the documented form.
  count = local.use_kms ? 1 : 0

  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }

  statement {
    sid       = "QdrantNodesUseThroughS3"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = concat([for role in aws_iam_role.qdrant : role.arn], [aws_iam_role.monitoring.arn])
    }
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${data.aws_region.current.name}.amazonaws.com"]
    }
  }
}

resource "aws_s3_bucket" "backup" {
  #checkov:skip=CKV_AWS_18:Access logging needs a separate log bucket: set backup_access_log_bucket (off by default; CloudTrail data events cover auditing).
  #checkov:skip=CKV2_AWS_62:Nothing consumes bucket events: completeness of each backup is tracked by its manifest, the backup metrics and their alerts.
  #checkov:skip=CKV_AWS_144:Cross-region replication is a disaster-recovery choice with its own cost and destination account; configure it outside this module.
  bucket              = local.bucket_name
  force_destroy       = var.backup_force_destroy
  object_lock_enabled = var.backup_object_lock_days > 0
  tags                = merge(local.tags, { Name = local.bucket_name })
}

resource "aws_s3_bucket_logging" "backup" {
  count         = var.backup_access_log_bucket == null ? 0 : 1
  bucket        = aws_s3_bucket.backup.id
  target_bucket = var.backup_access_log_bucket
  target_prefix = "${var.name}/"
}

resource "aws_s3_bucket_ownership_controls" "backup" {
  bucket = aws_s3_bucket.backup.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "backup" {
  bucket                  = aws_s3_bucket.backup.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "backup" {
  bucket = aws_s3_bucket.backup.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "backup" {
  bucket = aws_s3_bucket.backup.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = local.use_kms ? "aws:kms" : "AES256"
      kms_master_key_id = local.use_kms ? aws_kms_key.backup[0].arn : null
    }
    bucket_key_enabled = local.use_kms # one KMS call per object, not per part
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "backup" {
  bucket = aws_s3_bucket.backup.id

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = var.backup_abort_incomplete_upload_days
    }
  }

  # Retention of current versions is qdrant-ops' job (backup prune); S3 only drops what prune
  # deleted or overwrote, after a grace period.
  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.backup_noncurrent_version_days
    }
    expiration {
      expired_object_delete_marker = true
    }
  }

  depends_on = [aws_s3_bucket_versioning.backup]
}

resource "aws_s3_bucket_object_lock_configuration" "backup" {
  count  = var.backup_object_lock_days > 0 ? 1 : 0
  bucket = aws_s3_bucket.backup.id
  rule {
    default_retention {
      mode = "GOVERNANCE"
      days = var.backup_object_lock_days
    }
  }
}

data "aws_iam_policy_document" "backup_bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.backup.arn,
      "${aws_s3_bucket.backup.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "backup" {
  bucket = aws_s3_bucket.backup.id
  policy = data.aws_iam_policy_document.backup_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.backup]
}
