# A node comes back by itself when its hardware fails. EC2 recovery (simplified automatic recovery,
# made explicit in maintenance_options, and a CloudWatch alarm on the system status check for the
# instance types or cases it does not cover) moves the instance to healthy hardware with the same
# instance id, private IP, ENIs and EBS volumes, and reboots it: Qdrant starts from its data volume
# as the same peer, catches up from the raft log and needs no new replicas. A failed instance status
# check (the OS hung) reboots it. What does not come back this way (a terminated instance, a lost
# volume) is the healer's job (docs/self-healing.md). README.md, "When a node fails".
locals {
  # EC2 action -> the status check that triggers it, and for how many minutes.
  recovery_actions = {
    recover = { metric = "StatusCheckFailed_System", minutes = 2, what = "recover it onto healthy hardware (same instance, IP and EBS volumes)" }
    reboot  = { metric = "StatusCheckFailed_Instance", minutes = 3, what = "reboot it (its data volume stays)" }
  }
  recovery_alarms = var.auto_recovery ? {
    for pair in setproduct(keys(local.nodes), keys(local.recovery_actions)) :
    "${pair[0]}-${pair[1]}" => { node = pair[0], action = pair[1] }
  } : {}
}

resource "aws_cloudwatch_metric_alarm" "recovery" {
  for_each = local.recovery_alarms

  alarm_name          = each.key
  alarm_description   = "${local.recovery_actions[each.value.action].metric} on ${each.value.node}: ${local.recovery_actions[each.value.action].what}."
  namespace           = "AWS/EC2"
  metric_name         = local.recovery_actions[each.value.action].metric
  dimensions          = { InstanceId = aws_instance.qdrant[each.value.node].id }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = local.recovery_actions[each.value.action].minutes
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  alarm_actions       = ["arn:${data.aws_partition.current.partition}:automate:${data.aws_region.current.name}:ec2:${each.value.action}"]
  tags                = merge(local.tags, { Node = each.value.node })
}
