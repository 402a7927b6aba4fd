output "primary_endpoint" {
  description = "The primary's address (host of REDIS_URL)."
  value       = aws_elasticache_replication_group.main.primary_endpoint_address
}

output "port" {
  description = "The Redis port."
  value       = aws_elasticache_replication_group.main.port
}
