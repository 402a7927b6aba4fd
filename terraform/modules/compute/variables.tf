variable "name" {
  description = "Name prefix for the cluster, services and load balancer."
  type        = string
  default     = "zixly"
}

variable "region" {
  description = "The AWS region (AWS_DEFAULT_REGION in the containers)."
  type        = string
}

variable "image" {
  description = "The Zixly image (one image for every process), e.g. <account>.dkr.ecr.<region>.amazonaws.com/zixly:<git sha>."
  type        = string
}

variable "vpc_id" {
  description = "The VPC."
  type        = string
}

variable "vpc_cidr_block" {
  description = "The VPC's range: containers may reach PostgreSQL and Redis inside it."
  type        = string
}

variable "public_subnet_ids" {
  description = "Subnets for the load balancer."
  type        = list(string)
}

variable "private_subnet_ids" {
  description = "Subnets for the containers."
  type        = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate for the API's HTTPS listener."
  type        = string
}

variable "waf_web_acl_arn" {
  description = "The WAF web ACL in front of the load balancer."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key for logs and for the queues, bucket and secrets the containers use."
  type        = string
}

variable "queue_arns" {
  description = "Every SQS queue the containers send to and receive from."
  type        = list(string)
}

variable "outbound_queue_names" {
  description = "The outbound queues whose depth scales the outbound consumer."
  type        = list(string)
}

variable "bucket_arn" {
  description = "The artifacts bucket."
  type        = string
}

variable "database_secret_arn" {
  description = "Secret whose `url` key is DATABASE_URL."
  type        = string
}

variable "data_keys_secret_arn" {
  description = "Secret holding the data keys that seal tokens and webhook secrets (ZIXLY_DATA_KEYS_SECRET_ID)."
  type        = string
}

variable "metrics_token_secret_arn" {
  description = "Secrets Manager secret whose `token` key is ZIXLY_METRICS_TOKEN (the bearer token /metrics needs)."
  type        = string
}

variable "console_secret_arn" {
  description = "Secret whose `client_id`, `client_secret` and `session_key` keys are the console's OIDC client and session key."
  type        = string
}

variable "oidc_issuer" {
  description = "The OpenID Connect issuer people sign in at (ZIXLY_JWT_ISSUER: the `iss` of their tokens, discovery at <issuer>/.well-known/openid-configuration)."
  type        = string
}

variable "oidc_jwks_url" {
  description = "Where the issuer publishes its signing keys (ZIXLY_JWKS_URL)."
  type        = string
}

variable "redis_secret_arn" {
  description = "Secret whose `url` key is REDIS_URL."
  type        = string
}

variable "provider_app_secret_arns" {
  description = "App-credentials secret by provider; the `webhook_secrets` key feeds ZIXLY_<PROVIDER>_APP_WEBHOOK_SECRETS."
  type        = map(string)
}

variable "public_base_url" {
  description = "The API's public address (ZIXLY_PUBLIC_BASE_URL)."
  type        = string
}

variable "api_count" {
  description = "API tasks."
  type        = number
  default     = 2
}

variable "worker_min" {
  description = "Fewest Celery worker tasks."
  type        = number
  default     = 2
}

variable "worker_max" {
  description = "Most Celery worker tasks."
  type        = number
  default     = 10
}

variable "worker_backlog_per_task" {
  description = "Waiting Celery tasks per worker task that autoscaling aims for."
  type        = number
  default     = 50
}

variable "outbound_min" {
  description = "Fewest outbound consumer tasks."
  type        = number
  default     = 1
}

variable "outbound_max" {
  description = "Most outbound consumer tasks."
  type        = number
  default     = 5
}

variable "outbound_backlog_per_task" {
  description = "Waiting outbound messages per consumer task that autoscaling aims for."
  type        = number
  default     = 100
}

variable "log_retention_days" {
  description = "Days container logs are kept."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
