# Qdrant nodes spread over the subnets (one AZ each), each with its own encrypted gp3 data volume,
# and one monitoring host. IMDSv2 only, hop limit 1: containers on a host cannot reach the
# instance credentials.
data "aws_ami" "debian" {
  count       = var.ami_id == null ? 1 : 0
  most_recent = true
  owners      = ["136693071363"] # Debian's official account

  filter {
    name   = "name"
    values = ["debian-12-amd64-*"]
  }

  filter {
    name   = "architecture"
    values = ["x86_64"]
  }
}

data "aws_subnet" "node" {
  count = length(local.node_subnet_ids)
  id    = local.node_subnet_ids[count.index]
}

locals {
  ami_id = var.ami_id != null ? var.ami_id : data.aws_ami.debian[0].id
  nodes = {
    for index in range(var.qdrant_node_count) : format("%s-qdrant-%d", var.name, index + 1) => {
      subnet_id = local.node_subnet_ids[index % length(local.node_subnet_ids)],
      az        = data.aws_subnet.node[index % length(local.node_subnet_ids)].availability_zone,
    }
  }
  # The device name EC2 is asked for; on Nitro the volume appears as /dev/nvme*n1 and the common
  # role finds it by its volume id under /dev/disk/by-id.
  data_device_name = "/dev/sdf"
}

resource "aws_instance" "qdrant" {
  for_each = local.nodes

  ami                    = local.ami_id
  instance_type          = var.qdrant_instance_type
  subnet_id              = each.value.subnet_id
  vpc_security_group_ids = [aws_security_group.qdrant.id]
  iam_instance_profile   = aws_iam_instance_profile.qdrant[each.key].name
  key_name               = var.key_name
  ebs_optimized          = true
  monitoring             = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  # EC2's simplified automatic recovery (AWS's default where the type supports it, said here);
  # recovery.tf adds the status-check alarms.
  maintenance_options {
    auto_recovery = var.auto_recovery ? "default" : "disabled"
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.root_volume_size_gb
    encrypted             = true
    kms_key_id            = var.ebs_kms_key_arn
    delete_on_termination = true
    tags                  = merge(local.tags, { Name = "${each.key}-root", Role = "qdrant" })
  }

  # Without a separate volume resource, the data volume lives and dies with the instance.
  dynamic "ebs_block_device" {
    for_each = var.data_volume_survives_instance ? [] : [1]
    content {
      device_name           = local.data_device_name
      volume_type           = "gp3"
      volume_size           = var.data_volume_size_gb
      iops                  = var.data_volume_iops
      throughput            = var.data_volume_throughput
      encrypted             = true
      kms_key_id            = var.ebs_kms_key_arn
      delete_on_termination = true
      tags                  = merge(local.tags, { Name = "${each.key}-data", Role = "qdrant-data", Node = each.key })
    }
  }

  # No volume_tags: the separate data volumes carry their own tags (the provider forbids mixing).
  tags = merge(local.tags, { Name = each.key, Role = "qdrant" })

  lifecycle {
    # A newer AMI must not replace running nodes; roll them deliberately.
    ignore_changes = [ami]

    precondition {
      condition     = var.allow_even_node_count || var.qdrant_node_count % 2 == 1
      error_message = "qdrant_node_count = ${var.qdrant_node_count} is even: raft needs a majority, so an even count tolerates no more failures than one node fewer. Use an odd count or set allow_even_node_count = true."
    }
  }
}

resource "aws_ebs_volume" "data" {
  for_each = var.data_volume_survives_instance ? local.nodes : {}

  availability_zone = each.value.az
  type              = "gp3"
  size              = var.data_volume_size_gb
  iops              = var.data_volume_iops
  throughput        = var.data_volume_throughput
  encrypted         = true
  kms_key_id        = var.ebs_kms_key_arn
  tags              = merge(local.tags, { Name = "${each.key}-data", Role = "qdrant-data", Node = each.key })
}

resource "aws_volume_attachment" "data" {
  for_each = aws_ebs_volume.data

  device_name = local.data_device_name
  volume_id   = each.value.id
  instance_id = aws_instance.qdrant[each.key].id
  # On instance replacement detach cleanly so the new instance gets the same data.
  stop_instance_before_detaching = true
}

resource "aws_instance" "monitoring" {
  ami                    = local.ami_id
  instance_type          = var.monitoring_instance_type
  subnet_id              = local.node_subnet_ids[0]
  vpc_security_group_ids = [aws_security_group.monitoring.id]
  iam_instance_profile   = aws_iam_instance_profile.monitoring.name
  key_name               = var.key_name
  ebs_optimized          = true
  monitoring             = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  # EC2's simplified automatic recovery (AWS's default where the type supports it, said here);
  # recovery.tf adds the status-check alarms.
  maintenance_options {
    auto_recovery = var.auto_recovery ? "default" : "disabled"
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = max(var.root_volume_size_gb, 50) # Prometheus' TSDB lives here
    encrypted             = true
    kms_key_id            = var.ebs_kms_key_arn
    delete_on_termination = true
  }

  tags        = merge(local.tags, { Name = "${var.name}-monitoring-1", Role = "monitoring" })
  volume_tags = merge(local.tags, { Name = "${var.name}-monitoring-1", Role = "monitoring" })

  lifecycle {
    ignore_changes = [ami]
  }
}
