data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  tags = merge(var.tags, { Cluster = var.name, ManagedBy = "qdrant-ops" })
}
