output "data_encryption_key_arn" {
  description = "The data-encryption key secret."
  value       = aws_secretsmanager_secret.data_encryption_key.arn
}

output "provider_app_secret_arns" {
  description = "App-credentials secret ARN by provider."
  value       = { for p, s in aws_secretsmanager_secret.provider_app : p => s.arn }
}

output "database_secret_arn" {
  description = "The application's database login (its `url` key is DATABASE_URL)."
  value       = aws_secretsmanager_secret.database.arn
}

output "redis_secret_arn" {
  description = "The Redis URL with its auth token (its `url` key is REDIS_URL)."
  value       = aws_secretsmanager_secret.redis.arn
}

output "metrics_token_secret_arn" {
  description = "The bearer token /metrics needs (its `token` key is ZIXLY_METRICS_TOKEN)."
  value       = aws_secretsmanager_secret.metrics_token.arn
}

output "console_secret_arn" {
  description = "The console's OIDC client and session key (client_id, client_secret, session_key)."
  value       = aws_secretsmanager_secret.console.arn
}

output "secret_arns" {
  description = "Every secret ARN (for IAM policies)."
  value = concat(
    [aws_secretsmanager_secret.data_encryption_key.arn, aws_secretsmanager_secret.database.arn,
    aws_secretsmanager_secret.redis.arn, aws_secretsmanager_secret.metrics_token.arn,
    aws_secretsmanager_secret.console.arn],
    [for s in aws_secretsmanager_secret.provider_app : s.arn],
  )
}
