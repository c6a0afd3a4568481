# Production: 5 nodes over 3 AZs of an existing VPC, larger and faster data volumes, clients by
# security group, object lock on the backups, a per-AZ NAT is not needed (existing network).
provider "aws" {
  region = var.region

  default_tags {
    tags = { Environment = "production", Owner = "search-platform" }
  }
}

variable "region" {
  description = "AWS region."
  type        = string
}

variable "vpc_id" {
  description = "Existing VPC."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets, one per AZ (at least 3)."
  type        = list(string)
}

variable "app_security_group_ids" {
  description = "Security groups of the applications that query Qdrant."
  type        = list(string)
}

variable "admin_cidr_blocks" {
  description = "VPN ranges of the operators."
  type        = list(string)
}

variable "key_name" {
  description = "EC2 key pair Ansible uses (through Session Manager)."
  type        = string
}

module "qdrant" {
  source = "../.."

  name       = "search-prod"
  create_vpc = false
  vpc_id     = var.vpc_id
  subnet_ids = var.private_subnet_ids

  qdrant_node_count        = 5
  qdrant_instance_type     = "r6i.2xlarge"
  monitoring_instance_type = "m6i.large"
  data_volume_size_gb      = 1000
  data_volume_iops         = 6000
  data_volume_throughput   = 500

  client_security_group_ids = var.app_security_group_ids
  admin_cidr_blocks         = var.admin_cidr_blocks
  ssh_access                = "ssm"
  key_name                  = var.key_name

  backup_encryption              = "kms"
  backup_object_lock_days        = 14
  backup_noncurrent_version_days = 30

  ansible_inventory_dir = "${path.root}/../../../inventory/search-prod"
}

output "qdrant_nodes" {
  description = "The nodes."
  value       = module.qdrant.qdrant_nodes
}

output "backup_bucket" {
  description = "The backup bucket."
  value       = module.qdrant.backup_bucket
}
