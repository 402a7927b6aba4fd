variable "region" {
  description = "The region LocalStack pretends to be."
  type        = string
  default     = "us-east-1"
}

variable "localstack_endpoint" {
  description = "LocalStack's edge endpoint."
  type        = string
  default     = "http://localhost:4566"
}

variable "bucket_name" {
  description = "The artifacts bucket (the name `zixly aws bootstrap` uses)."
  type        = string
  default     = "zixly-artifacts"
}
