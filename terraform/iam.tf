# Qdrant nodes: one role per node. Each reads the cluster's backups (a restore reads every set)
# and writes only under <prefix>/<cluster>/<set>/nodes/<its name>/ (qdrant-ops backup formats 3
# and 4), each object once, so a compromised node can neither overwrite another node's part, nor
# its own earlier ones, nor plant records for it; no node may delete. Monitoring host:
# ec2:DescribeInstances for Prometheus' EC2 discovery, sealing sets (the only principal that writes
# seals, what makes a set restorable) and pruning them (the only principal that deletes backups).
# With ssh_access = "ssm" all also get AWS's Session Manager core policy.
data "aws_iam_policy_document" "ec2_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "qdrant" {
  for_each           = local.nodes
  name               = each.key
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
  tags               = merge(local.tags, { Node = each.key })
}

resource "aws_iam_instance_profile" "qdrant" {
  for_each = local.nodes
  name     = each.key
  role     = aws_iam_role.qdrant[each.key].name
  tags     = merge(local.tags, { Node = each.key })
}

data "aws_iam_policy_document" "qdrant_backups" {
  for_each = local.nodes

  statement {
    sid       = "ListOwnBackups"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.backup.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [local.backup_key_prefix, "${local.backup_key_prefix}*"]
    }
  }

  statement {
    sid       = "ReadOwnBackups"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.backup.arn}/${local.backup_key_prefix}*"]
  }

  # Write once: an object is created (PutObject, CompleteMultipartUpload) only with If-None-Match,
  # so a node cannot replace anything it wrote before either; the multipart steps that carry no
  # such header are told apart by s3:ObjectCreationOperation (docs/backup-trust.md).
  statement {
    sid       = "CreateOwnObjectsOnce"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.backup.arn}/${local.backup_key_prefix}*/nodes/${each.key}/*"]
    condition {
      test     = "Null"
      variable = "s3:if-none-match"
      values   = ["false"]
    }
  }

  statement {
    sid       = "UploadOwnParts"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.backup.arn}/${local.backup_key_prefix}*/nodes/${each.key}/*"]
    condition {
      test     = "Bool"
      variable = "s3:ObjectCreationOperation"
      values   = ["false"]
    }
  }

  statement {
    sid       = "AbortOwnUploads"
    actions   = ["s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
    resources = ["${aws_s3_bucket.backup.arn}/${local.backup_key_prefix}*/nodes/${each.key}/*"]
  }

  dynamic "statement" {
    for_each = local.use_kms ? [1] : []
    content {
      sid       = "UseBackupKey"
      actions   = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"]
      resources = [aws_kms_key.backup[0].arn]
    }
  }
}

resource "aws_iam_role_policy" "qdrant_backups" {
  for_each = local.nodes
  name     = "backups"
  role     = aws_iam_role.qdrant[each.key].id
  policy   = data.aws_iam_policy_document.qdrant_backups[each.key].json
}

resource "aws_iam_role" "monitoring" {
  name               = "${var.name}-monitoring"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
  tags               = local.tags
}

resource "aws_iam_instance_profile" "monitoring" {
  name = "${var.name}-monitoring"
  role = aws_iam_role.monitoring.name
  tags = local.tags
}

data "aws_iam_policy_document" "monitoring_discovery" {
  statement {
    sid       = "PrometheusEc2Discovery"
    actions   = ["ec2:DescribeInstances"]
    resources = ["*"] # DescribeInstances supports no resource-level restriction
  }
}

resource "aws_iam_role_policy" "monitoring_discovery" {
  name   = "ec2-discovery"
  role   = aws_iam_role.monitoring.id
  policy = data.aws_iam_policy_document.monitoring_discovery.json
}

data "aws_iam_policy_document" "backup_pruning" {
  statement {
    sid       = "ListBackups"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.backup.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [local.backup_key_prefix, "${local.backup_key_prefix}*"]
    }
  }

  statement {
    sid       = "PruneBackups"
    actions   = ["s3:GetObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.backup.arn}/${local.backup_key_prefix}*"]
  }

  # The sealer: a set's seal, written once; no node may write it (their keys lie under nodes/).
  statement {
    sid       = "SealSets"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.backup.arn}/${local.backup_key_prefix}*/seal.json"]
    condition {
      test     = "Null"
      variable = "s3:if-none-match"
      values   = ["false"]
    }
  }

  dynamic "statement" {
    for_each = local.use_kms ? [1] : []
    content {
      sid       = "ReadBackupKey"
      actions   = ["kms:Decrypt"]
      resources = [aws_kms_key.backup[0].arn]
    }
  }
}

resource "aws_iam_role_policy" "monitoring_backup_pruning" {
  name   = "backup-pruning"
  role   = aws_iam_role.monitoring.id
  policy = data.aws_iam_policy_document.backup_pruning.json
}

resource "aws_iam_role_policy_attachment" "ssm" {
  for_each   = var.ssh_access == "ssm" ? merge({ for name, role in aws_iam_role.qdrant : name => role.name }, { monitoring = aws_iam_role.monitoring.name }) : {}
  role       = each.value
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}
