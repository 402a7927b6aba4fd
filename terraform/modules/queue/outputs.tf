output "outbound_queue_urls" {
  description = "Outbound queue URL by provider."
  value       = { for p, q in aws_sqs_queue.outbound : p => q.url }
}

output "outbound_queue_names" {
  description = "Outbound queue names (for queue-depth autoscaling)."
  value       = [for q in aws_sqs_queue.outbound : q.name]
}

output "dead_letter_queue_arns" {
  description = "Outbound dead-letter queue ARN by provider."
  value       = { for p, q in aws_sqs_queue.outbound_dlq : p => q.arn }
}

output "notification_queue_url" {
  description = "The notification delivery queue."
  value       = aws_sqs_queue.notification.url
}

output "queue_arns" {
  description = "Every queue ARN, dead-letter queues included (for IAM policies)."
  value = concat(
    [for q in aws_sqs_queue.outbound : q.arn],
    [for q in aws_sqs_queue.outbound_dlq : q.arn],
    [aws_sqs_queue.notification.arn, aws_sqs_queue.notification_dlq.arn],
  )
}
