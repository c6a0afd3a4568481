# Hand-off to Ansible: a dynamic inventory keyed on the Cluster and Role tags, and the values
# Ansible needs from here as group_vars, so nothing is copied by hand.
locals {
  data_volume_ids = {
    for name, node in aws_instance.qdrant : name => (
      var.data_volume_survives_instance ? aws_ebs_volume.data[name].id : one(node.ebs_block_device[*].volume_id)
    )
  }
  ansible_group_vars = {
    qdrant_cluster_name         = var.name
    qdrant_backup_s3_bucket     = aws_s3_bucket.backup.id
    qdrant_backup_s3_prefix     = var.backup_prefix
    qdrant_backup_s3_region     = data.aws_region.current.name
    qdrant_data_volume_ids      = local.data_volume_ids
    qdrant_client_cidrs         = var.client_cidr_blocks # the qdrant role warns when TLS is off and these are set
    common_data_volume_id       = "{{ qdrant_data_volume_ids[inventory_hostname] | default('') }}"
    common_data_volume_required = "{{ inventory_hostname in qdrant_data_volume_ids }}"
    prometheus_ec2_sd_enabled   = false # the inventory already lists every host
    prometheus_ec2_region       = data.aws_region.current.name
    prometheus_ec2_cluster_tag  = var.name
    # HTTPS unless monitoring_tls_enabled is false; the certificate names the private IP (ansible_host).
    grafana_root_url            = "{{ 'https' if monitoring_tls_enabled | default(true) | bool else 'http' }}://${aws_instance.monitoring.private_ip}:3000/"
    alertmanager_external_url   = "{{ 'https' if monitoring_tls_enabled | default(true) | bool else 'http' }}://${aws_instance.monitoring.private_ip}:9093"
    prometheus_web_external_url = "{{ 'https' if monitoring_tls_enabled | default(true) | bool else 'http' }}://${aws_instance.monitoring.private_ip}:9090/"
  }
}

resource "local_file" "ansible_inventory" {
  count           = var.ansible_inventory_dir == null ? 0 : 1
  filename        = "${var.ansible_inventory_dir}/aws_ec2.yml"
  file_permission = "0644"
  content = templatefile("${path.module}/templates/aws_ec2.yml.tftpl", {
    cluster    = var.name
    region     = data.aws_region.current.name
    connection = var.ssh_access
  })
}

resource "local_file" "ansible_group_vars" {
  count           = var.ansible_inventory_dir == null ? 0 : 1
  filename        = "${var.ansible_inventory_dir}/group_vars/all/terraform.yml"
  file_permission = "0644"
  content         = "# Written by terraform (qdrant-ops module); do not edit, re-run terraform apply.\n${yamlencode(local.ansible_group_vars)}"
}
