output "proxy_endpoint" {
  description = "Where the application connects (host of DATABASE_URL)."
  value       = aws_db_proxy.main.endpoint
}

output "instance_endpoint" {
  description = "The instance itself (maintenance only; the application uses the proxy)."
  value       = aws_db_instance.main.address
}

output "master_user_secret_arn" {
  description = "The RDS-managed master password secret."
  value       = aws_db_instance.main.master_user_secret[0].secret_arn
}

output "instance_identifier" {
  description = "For snapshots and point-in-time restores."
  value       = aws_db_instance.main.identifier
}
