output "bucket_name" {
  description = "The artifacts bucket's name."
  value       = aws_s3_bucket.artifacts.id
}

output "bucket_arn" {
  description = "The artifacts bucket's ARN (for IAM policies)."
  value       = aws_s3_bucket.artifacts.arn
}
