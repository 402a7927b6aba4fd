output "vpc_id" {
  description = "The VPC."
  value       = aws_vpc.main.id
}

output "vpc_cidr_block" {
  description = "The VPC's address range."
  value       = aws_vpc.main.cidr_block
}

output "public_subnet_ids" {
  description = "Subnets for the load balancer."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "Subnets for containers, the database and Redis."
  value       = aws_subnet.private[*].id
}

output "waf_web_acl_arn" {
  description = "The web ACL to attach to the load balancer."
  value       = aws_wafv2_web_acl.main.arn
}
