output "outbound_queue_urls" {
  description = "Outbound queue URL by provider."
  value       = module.queue.outbound_queue_urls
}

output "notification_queue_url" {
  description = "The notification delivery queue."
  value       = module.queue.notification_queue_url
}

output "bucket_name" {
  description = "The artifacts bucket."
  value       = module.storage.bucket_name
}

output "secret_arns" {
  description = "Every secret (put their values with `aws secretsmanager put-secret-value`)."
  value       = module.secrets.secret_arns
}
