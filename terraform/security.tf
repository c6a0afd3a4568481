# Qdrant: 6333 REST and 6334 gRPC from clients and the cluster; 6335 (raft, shard transfers) only
# between cluster nodes; 9100 (node_exporter) only from the monitoring host. Monitoring: Grafana,
# Prometheus and Alertmanager from the admins. SSH only with ssh_access = "ssh".
locals {
  public_cidrs = [for c in concat(var.client_cidr_blocks, var.admin_cidr_blocks) : c if endswith(c, "/0")]
  ssh_enabled  = var.ssh_access == "ssh"

  client_ports = { rest = 6333, grpc = 6334 }
  client_rules = {
    for pair in setproduct(keys(local.client_ports), var.client_cidr_blocks) :
    "${pair[0]}-${pair[1]}" => { port = local.client_ports[pair[0]], cidr = pair[1] }
  }
  client_sg_rules = {
    for pair in setproduct(keys(local.client_ports), var.client_security_group_ids) :
    "${pair[0]}-${pair[1]}" => { port = local.client_ports[pair[0]], group = pair[1] }
  }
  admin_ports = merge({ grafana = 3000, prometheus = 9090, alertmanager = 9093 }, local.ssh_enabled ? { ssh = 22 } : {})
  admin_rules = {
    for pair in setproduct(keys(local.admin_ports), var.admin_cidr_blocks) :
    "${pair[0]}-${pair[1]}" => { port = local.admin_ports[pair[0]], cidr = pair[1] }
  }
  # Outbound: HTTPS (S3 endpoint, SSM, KMS, package mirrors), HTTP (Debian mirrors), and the VPC.
  egress_ports = { https = 443, http = 80 }
}

resource "aws_security_group" "qdrant" {
  name        = "${var.name}-qdrant"
  description = "Qdrant nodes of ${var.name}"
  vpc_id      = local.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-qdrant" })

  lifecycle {
    precondition {
      condition     = var.allow_public_ingress || length(local.public_cidrs) == 0
      error_message = "0.0.0.0/0 in client_cidr_blocks or admin_cidr_blocks opens the cluster to the internet: use narrower CIDRs, or set allow_public_ingress = true."
    }
  }
}

resource "aws_security_group" "monitoring" {
  name        = "${var.name}-monitoring"
  description = "Monitoring host of ${var.name}"
  vpc_id      = local.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-monitoring" })
}

resource "aws_vpc_security_group_ingress_rule" "qdrant_clients" {
  for_each          = local.client_rules
  security_group_id = aws_security_group.qdrant.id
  description       = "Qdrant ${each.key} from clients"
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  cidr_ipv4         = each.value.cidr
}

resource "aws_vpc_security_group_ingress_rule" "qdrant_client_groups" {
  for_each                     = local.client_sg_rules
  security_group_id            = aws_security_group.qdrant.id
  description                  = "Qdrant ${each.key} from client security group"
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  referenced_security_group_id = each.value.group
}

resource "aws_vpc_security_group_ingress_rule" "qdrant_cluster" {
  for_each                     = { rest = 6333, grpc = 6334, p2p = 6335 }
  security_group_id            = aws_security_group.qdrant.id
  description                  = "Qdrant ${each.key} between cluster nodes"
  ip_protocol                  = "tcp"
  from_port                    = each.value
  to_port                      = each.value
  referenced_security_group_id = aws_security_group.qdrant.id
}

# Prometheus scrapes /metrics (REST port) and Ansible's backup checks use it from the monitoring host.
resource "aws_vpc_security_group_ingress_rule" "qdrant_from_monitoring" {
  for_each                     = { rest = 6333, node_exporter = 9100 }
  security_group_id            = aws_security_group.qdrant.id
  description                  = "${each.key} from the monitoring host"
  ip_protocol                  = "tcp"
  from_port                    = each.value
  to_port                      = each.value
  referenced_security_group_id = aws_security_group.monitoring.id
}

resource "aws_vpc_security_group_ingress_rule" "monitoring_self" {
  for_each                     = { node_exporter = 9100, prometheus = 9090, alertmanager = 9093 }
  security_group_id            = aws_security_group.monitoring.id
  description                  = "${each.key} between monitoring hosts"
  ip_protocol                  = "tcp"
  from_port                    = each.value
  to_port                      = each.value
  referenced_security_group_id = aws_security_group.monitoring.id
}

resource "aws_vpc_security_group_ingress_rule" "monitoring_admins" {
  for_each          = local.admin_rules
  security_group_id = aws_security_group.monitoring.id
  description       = "${each.key} from admins"
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  cidr_ipv4         = each.value.cidr
}

resource "aws_vpc_security_group_ingress_rule" "qdrant_ssh" {
  for_each          = local.ssh_enabled ? toset(var.admin_cidr_blocks) : toset([])
  security_group_id = aws_security_group.qdrant.id
  description       = "SSH from admins"
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "internet" {
  for_each = {
    for pair in setproduct(["qdrant", "monitoring"], keys(local.egress_ports)) :
    "${pair[0]}-${pair[1]}" => { group = pair[0], port = local.egress_ports[pair[1]] }
  }
  security_group_id = each.value.group == "qdrant" ? aws_security_group.qdrant.id : aws_security_group.monitoring.id
  description       = "${each.key} out"
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "vpc" {
  for_each          = { qdrant = aws_security_group.qdrant.id, monitoring = aws_security_group.monitoring.id }
  security_group_id = each.value
  description       = "${each.key} to the VPC"
  ip_protocol       = "-1"
  cidr_ipv4         = local.vpc_cidr
}
