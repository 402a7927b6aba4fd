output "alb_dns_name" {
  description = "Point the API's DNS name (ZIXLY_PUBLIC_BASE_URL) here."
  value       = aws_lb.api.dns_name
}

output "app_security_group_id" {
  description = "The containers' security group (allowed into the database and Redis)."
  value       = aws_security_group.app.id
}

output "cluster_name" {
  description = "The ECS cluster."
  value       = aws_ecs_cluster.main.name
}

output "task_definition_arns" {
  description = "Task definition by process; run one-off commands (zixly db upgrade) with the api one."
  value       = { for k, t in aws_ecs_task_definition.service : k => t.arn }
}
