variable "bucket_name" {
  description = "The artifacts bucket (job outputs, stored webhook bodies)."
  type        = string
}

variable "kms_key_arn" {
  description = "A customer-managed KMS key for default encryption; null uses SSE-S3 (AES256)."
  type        = string
  default     = null
}

variable "glacier_after_days" {
  description = "Days before objects move to Glacier."
  type        = number
  default     = 90
}

variable "expire_after_days" {
  description = "Days before objects are deleted (7 years)."
  type        = number
  default     = 2555
}

variable "noncurrent_expire_after_days" {
  description = "Days an overwritten or deleted object version is kept."
  type        = number
  default     = 30
}

variable "force_destroy" {
  description = "Allow destroying a non-empty bucket (LocalStack only)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags for the bucket."
  type        = map(string)
  default     = {}
}
