# Qdrant nodes: read and write this cluster's backup keys and use the backup key, nothing else.
# Monitoring host: ec2:DescribeInstances for Prometheus' EC2 discovery, nothing else.
# With ssh_access = "ssm" both also get AWS's Session Manager core policy.
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
  name               = "${var.name}-qdrant"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
  tags               = local.tags
}

resource "aws_iam_instance_profile" "qdrant" {
  name = "${var.name}-qdrant"
  role = aws_iam_role.qdrant.name
  tags = local.tags
}

data "aws_iam_policy_document" "qdrant_backups" {
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
    sid = "ReadWriteOwnBackups"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${aws_s3_bucket.backup.arn}/${local.backup_key_prefix}*"]
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
  name   = "backups"
  role   = aws_iam_role.qdrant.id
  policy = data.aws_iam_policy_document.qdrant_backups.json
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

resource "aws_iam_role_policy_attachment" "ssm" {
  for_each   = var.ssh_access == "ssm" ? { qdrant = aws_iam_role.qdrant.name, monitoring = aws_iam_role.monitoring.name } : {}
  role       = each.value
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}
