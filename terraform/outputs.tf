output "qdrant_nodes" {
  description = "Qdrant nodes by name: instance id, private IP, availability zone, data volume id."
  value = {
    for name, node in aws_instance.qdrant : name => {
      instance_id    = node.id
      private_ip     = node.private_ip
      az             = node.availability_zone
      data_volume_id = local.data_volume_ids[name]
    }
  }
}

output "monitoring_private_ip" {
  description = "Private IP of the monitoring host (Grafana on 3000, Prometheus on 9090)."
  value       = aws_instance.monitoring.private_ip
}

output "backup_bucket" {
  description = "Name of the S3 backup bucket."
  value       = aws_s3_bucket.backup.id
}

output "backup_prefix" {
  description = "Key prefix of the backups (the cluster's keys are under <backup_prefix>/<name>/)."
  value       = var.backup_prefix
}

output "backup_kms_key_arn" {
  description = "KMS key of the backups (null with SSE-S3)."
  value       = local.use_kms ? aws_kms_key.backup[0].arn : null
}

output "region" {
  description = "AWS region of the deployment."
  value       = data.aws_region.current.name
}

output "vpc_id" {
  description = "VPC of the cluster."
  value       = local.vpc_id
}

output "subnet_ids" {
  description = "Private subnets the nodes run in."
  value       = local.node_subnet_ids
}

output "security_group_ids" {
  description = "Security groups of the Qdrant nodes and of the monitoring host."
  value       = { qdrant = aws_security_group.qdrant.id, monitoring = aws_security_group.monitoring.id }
}

output "ansible_group_vars" {
  description = "The variables handed to Ansible (written to <ansible_inventory_dir>/group_vars/all/terraform.yml)."
  value       = local.ansible_group_vars
}
