# The smallest useful deployment: 3 nodes in a new VPC, SSM access, SSE-KMS backups, and the
# Ansible inventory written to inventory/<name>/.
#   terraform -chdir=terraform/examples/minimal init
#   terraform -chdir=terraform/examples/minimal apply -var admin_cidr=10.0.0.0/8
provider "aws" {
  region = var.region
}

variable "region" {
  description = "AWS region."
  type        = string
  default     = "eu-west-1"
}

variable "admin_cidr" {
  description = "Network the operators (and the applications) come from."
  type        = string
}

module "qdrant" {
  source = "../.."

  name                  = "qdrant-demo"
  client_cidr_blocks    = [var.admin_cidr]
  admin_cidr_blocks     = [var.admin_cidr]
  ansible_inventory_dir = "${path.root}/../../../inventory/qdrant-demo"
}

output "qdrant_nodes" {
  description = "The nodes."
  value       = module.qdrant.qdrant_nodes
}
