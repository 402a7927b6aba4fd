# Secrets Manager entries. Terraform creates the containers only: values are put by an operator
# (`aws secretsmanager put-secret-value`, see docs/deploy.md), so no secret ever sits in Terraform state.
# ECS injects them into the containers as environment variables (modules/compute).

resource "aws_secretsmanager_secret" "data_encryption_key" {
  name                    = "${var.name_prefix}/data-encryption-key"
  description             = "Key that encrypts OAuth tokens at rest: {\"key\": \"<base64 32 bytes>\"}."
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.recovery_window_in_days
  tags                    = var.tags
}

resource "aws_secretsmanager_secret" "provider_app" {
  for_each = toset(var.providers_list)

  name                    = "${var.name_prefix}/providers/${each.key}"
  description             = "Zixly's ${each.key} app: {\"client_id\", \"client_secret\", \"webhook_secrets\"}."
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.recovery_window_in_days
  tags                    = var.tags
}

resource "aws_secretsmanager_secret" "database" {
  name                    = "${var.name_prefix}/database"
  description             = "The application's database login: {\"username\", \"password\", \"url\"}; url is DATABASE_URL."
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.recovery_window_in_days
  tags                    = var.tags
}

resource "aws_secretsmanager_secret" "metrics_token" {
  name                    = "${var.name_prefix}/metrics-token"
  description             = "{\"token\": \"<random, e.g. openssl rand -hex 32>\"}: ZIXLY_METRICS_TOKEN, the bearer token /metrics needs (Prometheus scrapes with it)."
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.recovery_window_in_days
  tags                    = var.tags
}

resource "aws_secretsmanager_secret" "console" {
  name                    = "${var.name_prefix}/console"
  description             = "{\"client_id\", \"client_secret\", \"session_key\"}: the console's OpenID Connect client at the issuer (ZIXLY_CONSOLE_OIDC_CLIENT_ID / _SECRET) and the key that signs its session cookie (ZIXLY_CONSOLE_SECRET_KEY, e.g. openssl rand -hex 32)."
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.recovery_window_in_days
  tags                    = var.tags
}

resource "aws_secretsmanager_secret" "redis" {
  name                    = "${var.name_prefix}/redis"
  description             = "{\"url\": \"rediss://:<auth token>@<primary endpoint>:6379/0?ssl_cert_reqs=required\"}: REDIS_URL."
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.recovery_window_in_days
  tags                    = var.tags
}
