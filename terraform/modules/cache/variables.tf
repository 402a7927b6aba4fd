variable "name" {
  description = "Identifier prefix for the Redis resources."
  type        = string
  default     = "zixly"
}

variable "vpc_id" {
  description = "The VPC."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets, in at least two availability zones."
  type        = list(string)
}

variable "client_security_group_ids" {
  description = "Security groups allowed to connect."
  type        = list(string)
}

variable "auth_token" {
  description = "The Redis AUTH token (16-128 characters); pass it as TF_VAR_redis_auth_token, never in a file."
  type        = string
  sensitive   = true
}

variable "kms_key_arn" {
  description = "KMS key for data at rest and the slow log."
  type        = string
}

variable "node_type" {
  description = "ElastiCache node type."
  type        = string
  default     = "cache.t4g.small"
}

variable "replicas" {
  description = "Nodes in the replication group (primary included); at least 2 for failover."
  type        = number
  default     = 2
}

variable "snapshot_retention_days" {
  description = "Days of daily snapshots."
  type        = number
  default     = 7
}

variable "log_retention_days" {
  description = "Days the slow log is kept."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
