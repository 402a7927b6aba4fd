variable "name" {
  description = "Name prefix for the network's resources."
  type        = string
  default     = "zixly"
}

variable "cidr_block" {
  description = "The VPC's address range."
  type        = string
  default     = "10.40.0.0/16"
}

variable "availability_zones" {
  description = "Zones to spread subnets and NAT gateways over (named, so the network never changes by itself)."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) >= 2
    error_message = "At least two availability zones: the database and Redis fail over between them."
  }
}

variable "kms_key_arn" {
  description = "KMS key for the flow-log and WAF-log log groups."
  type        = string
}

variable "log_retention_days" {
  description = "Days flow logs and WAF logs are kept."
  type        = number
  default     = 365
}

variable "waf_rate_limit_per_ip" {
  description = "Requests per 5 minutes from one IP before WAF blocks it (webhook bursts included)."
  type        = number
  default     = 3000
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
