variable "providers_list" {
  description = "The providers Zixly writes to; each gets an ordered outbound FIFO queue and its dead-letter queue."
  type        = list(string)
  default     = ["xero", "hubspot", "shopify", "asana", "salesforce"]
}

variable "worst_handling_seconds" {
  description = "The longest one outbound message may take to handle (every call it makes, at its timeout)."
  type        = number
  default     = 90
}

variable "visibility_timeout_seconds" {
  description = "How long a received outbound message stays invisible; must exceed worst_handling_seconds."
  type        = number
  default     = 180
}

variable "max_receive_count" {
  description = "Receives without a delete before SQS moves a message to the dead-letter queue."
  type        = number
  default     = 5
}

variable "notification_visibility_timeout_seconds" {
  description = "Visibility timeout of the notification delivery queue."
  type        = number
  default     = 60
}

variable "kms_key_arn" {
  description = "A customer-managed KMS key for the queues; null uses SQS-managed encryption."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for every queue."
  type        = map(string)
  default     = {}
}
