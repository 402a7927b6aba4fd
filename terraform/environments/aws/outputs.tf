output "api_load_balancer" {
  description = "Point the API's DNS name here."
  value       = module.compute.alb_dns_name
}

output "database_proxy_endpoint" {
  description = "The host for DATABASE_URL (put the URL in the zixly-<env>/database secret)."
  value       = module.database.proxy_endpoint
}

output "database_instance" {
  description = "For snapshots and point-in-time restores."
  value       = module.database.instance_identifier
}

output "redis_primary_endpoint" {
  description = "The host for REDIS_URL (put the URL in the zixly-<env>/redis secret)."
  value       = module.cache.primary_endpoint
}

output "artifacts_bucket" {
  description = "The artifacts bucket."
  value       = module.storage.bucket_name
}

output "outbound_queue_urls" {
  description = "Outbound queue URL by provider."
  value       = module.queue.outbound_queue_urls
}

output "task_definitions" {
  description = "Run `zixly db upgrade` as a one-off task with the api task definition."
  value       = module.compute.task_definition_arns
}
