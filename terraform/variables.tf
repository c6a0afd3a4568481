# ---------------------------------------------------------------------------------------------
# Cluster
# ---------------------------------------------------------------------------------------------
variable "name" {
  description = "Cluster name: prefix of every resource, the Cluster tag, and the S3 key prefix of its backups."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 characters of lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------------------------
variable "create_vpc" {
  description = "Create a VPC with public and private subnets in availability_zone_count AZs (and NAT). false: use subnet_ids."
  type        = bool
  default     = true
}

variable "vpc_cidr" {
  description = "CIDR of the created VPC."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 20
    error_message = "vpc_cidr must be a valid IPv4 CIDR of /20 or larger."
  }
}

variable "availability_zone_count" {
  description = "Number of availability zones of the created VPC (the nodes are spread over them)."
  type        = number
  default     = 3

  validation {
    condition     = var.availability_zone_count >= 3 && var.availability_zone_count <= 6
    error_message = "availability_zone_count must be between 3 and 6: a 3-node quorum needs 3 AZs to survive the loss of one."
  }
}

variable "availability_zones" {
  description = "Availability zones of the created VPC by name (e.g. [\"eu-west-1a\", ...]). Default: the region's first availability_zone_count zones."
  type        = list(string)
  default     = []
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all private subnets (cheaper) instead of one per AZ (survives an AZ outage)."
  type        = bool
  default     = false
}

variable "vpc_id" {
  description = "Existing VPC (create_vpc = false)."
  type        = string
  default     = null
}

variable "subnet_ids" {
  description = "Existing private subnets in at least 3 AZs (create_vpc = false); nodes are spread over them in order."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.subnet_ids) == 0 || length(var.subnet_ids) >= 3
    error_message = "subnet_ids needs at least 3 subnets (one per AZ), or none with create_vpc = true."
  }
}

# ---------------------------------------------------------------------------------------------
# Access
# ---------------------------------------------------------------------------------------------
variable "client_cidr_blocks" {
  description = "CIDRs of the applications that call Qdrant on 6333 (REST) and 6334 (gRPC)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.client_cidr_blocks : can(cidrhost(c, 0))])
    error_message = "client_cidr_blocks must hold valid IPv4 CIDRs."
  }
}

variable "client_security_group_ids" {
  description = "Security groups of the applications that call Qdrant on 6333 and 6334."
  type        = list(string)
  default     = []
}

variable "admin_cidr_blocks" {
  description = "CIDRs allowed to SSH (ssh_access = \"ssh\") and to reach Grafana, Prometheus and Alertmanager."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.admin_cidr_blocks : can(cidrhost(c, 0))])
    error_message = "admin_cidr_blocks must hold valid IPv4 CIDRs."
  }
}

variable "allow_public_ingress" {
  description = "Allow 0.0.0.0/0 in client_cidr_blocks or admin_cidr_blocks. Off: such a CIDR is refused at plan time."
  type        = bool
  default     = false
}

variable "ssh_access" {
  description = "How operators reach the hosts: \"ssm\" (Session Manager, no inbound port) or \"ssh\" (port 22 from admin_cidr_blocks)."
  type        = string
  default     = "ssm"

  validation {
    condition     = contains(["ssm", "ssh"], var.ssh_access)
    error_message = "ssh_access must be \"ssm\" or \"ssh\"."
  }
}

variable "key_name" {
  description = "EC2 key pair Ansible logs in with (over SSH, or SSH tunnelled through Session Manager with ssh_access = \"ssm\")."
  type        = string
  default     = null
}

# ---------------------------------------------------------------------------------------------
# Compute
# ---------------------------------------------------------------------------------------------
variable "qdrant_node_count" {
  description = "Number of Qdrant nodes: at least 3, odd unless allow_even_node_count (raft needs a majority)."
  type        = number
  default     = 3

  validation {
    condition     = var.qdrant_node_count >= 3 && floor(var.qdrant_node_count) == var.qdrant_node_count
    error_message = "qdrant_node_count must be a whole number of at least 3."
  }
}

variable "allow_even_node_count" {
  description = "Allow an even qdrant_node_count (e.g. while scaling from 3 to 5)."
  type        = bool
  default     = false
}

variable "ami_id" {
  description = "AMI of every host. Default: the newest official Debian 12 amd64 image."
  type        = string
  default     = null
}

variable "qdrant_instance_type" {
  description = "Instance type of the Qdrant nodes (Nitro: EBS volumes appear as NVMe devices)."
  type        = string
  default     = "r6i.xlarge"
}

variable "monitoring_instance_type" {
  description = "Instance type of the monitoring host."
  type        = string
  default     = "t3.medium"
}

variable "root_volume_size_gb" {
  description = "Encrypted gp3 root volume size of every host."
  type        = number
  default     = 30

  validation {
    condition     = var.root_volume_size_gb >= 8
    error_message = "root_volume_size_gb must be at least 8."
  }
}

variable "data_volume_size_gb" {
  description = "Size of each Qdrant node's encrypted gp3 data volume."
  type        = number
  default     = 200

  validation {
    condition     = var.data_volume_size_gb >= 10 && var.data_volume_size_gb <= 16384
    error_message = "data_volume_size_gb must be between 10 and 16384."
  }
}

variable "data_volume_iops" {
  description = "Provisioned IOPS of each data volume (gp3: 3000-16000)."
  type        = number
  default     = 3000

  validation {
    condition     = var.data_volume_iops >= 3000 && var.data_volume_iops <= 16000
    error_message = "data_volume_iops must be between 3000 and 16000 (gp3)."
  }
}

variable "data_volume_throughput" {
  description = "Throughput of each data volume in MiB/s (gp3: 125-1000)."
  type        = number
  default     = 250

  validation {
    condition     = var.data_volume_throughput >= 125 && var.data_volume_throughput <= 1000
    error_message = "data_volume_throughput must be between 125 and 1000 MiB/s (gp3)."
  }
}

variable "data_volume_survives_instance" {
  description = "Keep each data volume as its own resource, so replacing an instance re-attaches its data. false: the volume is part of the instance and deleted with it."
  type        = bool
  default     = true
}

variable "auto_recovery" {
  description = "EC2 recovery of every host: a failed system status check moves it to healthy hardware as the same instance with its volumes, a failed instance status check reboots it. false: neither."
  type        = bool
  default     = true
}

variable "ebs_kms_key_arn" {
  description = "KMS key for the root and data volumes. Default: the account's EBS default key (aws/ebs)."
  type        = string
  default     = null
}

# ---------------------------------------------------------------------------------------------
# Backups
# ---------------------------------------------------------------------------------------------
variable "backup_bucket_name" {
  description = "S3 bucket of the backups. Default: <name>-qdrant-backups-<account id>."
  type        = string
  default     = null
}

variable "backup_prefix" {
  description = "Key prefix of the backups; each cluster writes under <backup_prefix>/<name>/."
  type        = string
  default     = "qdrant-backups"

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9._-]+)*$", var.backup_prefix))
    error_message = "backup_prefix must be a relative key prefix without leading or trailing slash."
  }
}

variable "backup_encryption" {
  description = "\"kms\": SSE-KMS with a key created here that rotates yearly; \"s3\": SSE-S3 (AES256)."
  type        = string
  default     = "kms"

  validation {
    condition     = contains(["kms", "s3"], var.backup_encryption)
    error_message = "backup_encryption must be \"kms\" or \"s3\"."
  }
}

variable "backup_noncurrent_version_days" {
  description = "Days before overwritten or deleted backup objects (noncurrent versions) expire."
  type        = number
  default     = 30

  validation {
    condition     = var.backup_noncurrent_version_days >= 1
    error_message = "backup_noncurrent_version_days must be at least 1."
  }
}

variable "backup_abort_incomplete_upload_days" {
  description = "Days before the parts of an unfinished multipart upload are removed."
  type        = number
  default     = 2

  validation {
    condition     = var.backup_abort_incomplete_upload_days >= 1
    error_message = "backup_abort_incomplete_upload_days must be at least 1."
  }
}

variable "backup_object_lock_days" {
  description = "Object lock (governance mode) retention in days for every backup object; 0 disables object lock. Only at bucket creation."
  type        = number
  default     = 0

  validation {
    condition     = var.backup_object_lock_days >= 0
    error_message = "backup_object_lock_days must be 0 (off) or a number of days."
  }
}

variable "backup_access_log_bucket" {
  description = "Bucket receiving the backup bucket's server access logs (prefix <name>/); null: none (use CloudTrail data events)."
  type        = string
  default     = null
}

variable "backup_force_destroy" {
  description = "Let terraform destroy delete a bucket that still holds backups (test clusters only)."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------------------------------------
# Hand-off to Ansible
# ---------------------------------------------------------------------------------------------
variable "ansible_inventory_dir" {
  description = "Directory to write the Ansible inventory into (aws_ec2.yml and group_vars/all/terraform.yml); null writes nothing."
  type        = string
  default     = null
}
