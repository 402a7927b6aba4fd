variable "name_prefix" {
  description = "Secret names start with this, e.g. zixly/database."
  type        = string
  default     = "zixly"
}

variable "providers_list" {
  description = "Providers with an app-credentials secret (OAuth client id/secret, webhook signing secrets)."
  type        = list(string)
  default     = ["xero", "hubspot", "shopify", "asana", "salesforce"]
}

variable "kms_key_arn" {
  description = "A customer-managed KMS key for the secrets; null uses the AWS-managed key."
  type        = string
  default     = null
}

variable "recovery_window_in_days" {
  description = "Days a deleted secret can be restored (0 deletes at once: LocalStack only)."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags for every secret."
  type        = map(string)
  default     = {}
}
