variable "environment" {
  description = "The environment's name: staging, production."
  type        = string
}

variable "region" {
  description = "The AWS region."
  type        = string
  default     = "ap-southeast-2"
}

variable "availability_zones" {
  description = "The zones of the network (two or three)."
  type        = list(string)
  default     = ["ap-southeast-2a", "ap-southeast-2b"]
}

variable "image" {
  description = "The Zixly image to run, tagged with its git commit."
  type        = string
}

variable "certificate_arn" {
  description = "ACM certificate for the API's domain."
  type        = string
}

variable "public_base_url" {
  description = "The API's public address, e.g. https://api.zixly.example."
  type        = string
}

variable "oidc_issuer" {
  description = "The OpenID Connect issuer people (tenant admins, staff) sign in at, e.g. https://login.zixly.example/; the API trusts the tokens it issues."
  type        = string
}

variable "oidc_jwks_url" {
  description = "The issuer's signing keys, e.g. https://login.zixly.example/.well-known/jwks.json."
  type        = string
}

variable "redis_auth_token" {
  description = "Redis AUTH token: TF_VAR_redis_auth_token from the deploy pipeline's secret store, never a file."
  type        = string
  sensitive   = true
}
