# A node comes back by itself when its hardware fails. EC2 recovery (simplified automatic recovery,
# made explicit in maintenance_options, and a CloudWatch alarm on the system status check for the
# instance types or cases it does not cover) moves the instance to healthy hardware with the same
# instance id, private IP, ENIs and EBS volumes, and reboots it: Qdrant starts from its data volume
# as the same peer, catches up from the raft log and needs no new replicas. A failed instance status
# check (the OS hung) reboots it. What does not come back this way (a terminated instance, a lost
# volume) is the healer's job (docs/self-healing.md). README.md, "When a node fails".
locals {
  recovery_nodes = var.auto_recovery ? aws_instance.qdrant : {}
}

resource "aws_cloudwatch_metric_alarm" "recover" {
  for_each = local.recovery_nodes

  alarm_name          = "${each.key}-recover"
  alarm_description   = "EC2 system status check failed on ${each.key}: recover it onto healthy hardware (same instance, IP and EBS volumes)."
  namespace           = "AWS/EC2"
  metric_name         = "StatusCheckFailed_System"
  dimensions          = { InstanceId = each.value.id }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 2
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  alarm_actions       = ["arn:${data.aws_partition.current.partition}:automate:${data.aws_region.current.name}:ec2:recover"]
  tags                = merge(local.tags, { Node = each.key })
}

resource "aws_cloudwatch_metric_alarm" "reboot" {
  for_each = local.recovery_nodes

  alarm_name          = "${each.key}-reboot"
  alarm_description   = "EC2 instance status check failed on ${each.key} for 3 minutes: reboot it (its data volume stays)."
  namespace           = "AWS/EC2"
  metric_name         = "StatusCheckFailed_Instance"
  dimensions          = { InstanceId = each.value.id }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 3
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  alarm_actions       = ["arn:${data.aws_partition.current.partition}:automate:${data.aws_region.current.name}:ec2:reboot"]
  tags                = merge(local.tags, { Node = each.key })
}
