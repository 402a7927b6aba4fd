# Zixly's SQS queues: one ordered outbound FIFO queue per provider (high-throughput mode: order and
# de-duplication per message group, i.e. per tenant connection), each with a FIFO dead-letter queue, and the
# standard notification delivery queue with its own. Names match core/platform/aws.py (a test checks it).

locals {
  dlq_retention_seconds = 1209600 # 14 days, the SQS maximum: time to inspect and replay dead letters
  long_poll_seconds     = 20
  sse_managed           = var.kms_key_arn == null ? true : null
}

resource "aws_sqs_queue" "outbound_dlq" {
  for_each = toset(var.providers_list)

  name                        = "zixly-outbound-${each.key}-dlq.fifo"
  fifo_queue                  = true
  content_based_deduplication = false
  deduplication_scope         = "messageGroup"
  fifo_throughput_limit       = "perMessageGroupId"
  message_retention_seconds   = local.dlq_retention_seconds
  kms_master_key_id           = var.kms_key_arn
  sqs_managed_sse_enabled     = local.sse_managed
  tags                        = var.tags
}

resource "aws_sqs_queue" "outbound" {
  for_each = toset(var.providers_list)

  name                        = "zixly-outbound-${each.key}.fifo"
  fifo_queue                  = true
  content_based_deduplication = false # the producer always sends an explicit de-duplication id
  deduplication_scope         = "messageGroup"
  fifo_throughput_limit       = "perMessageGroupId"
  visibility_timeout_seconds  = var.visibility_timeout_seconds
  receive_wait_time_seconds   = local.long_poll_seconds
  kms_master_key_id           = var.kms_key_arn
  sqs_managed_sse_enabled     = local.sse_managed
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.outbound_dlq[each.key].arn
    maxReceiveCount     = var.max_receive_count
  })
  tags = var.tags

  lifecycle {
    precondition {
      condition     = var.visibility_timeout_seconds > var.worst_handling_seconds
      error_message = "visibility_timeout_seconds must exceed worst_handling_seconds, or a slow message is handled twice."
    }
  }
}

resource "aws_sqs_queue" "notification_dlq" {
  name                      = "zixly-notification-delivery-dlq"
  message_retention_seconds = local.dlq_retention_seconds
  kms_master_key_id         = var.kms_key_arn
  sqs_managed_sse_enabled   = local.sse_managed
  tags                      = var.tags
}

resource "aws_sqs_queue" "notification" {
  name                       = "zixly-notification-delivery"
  visibility_timeout_seconds = var.notification_visibility_timeout_seconds
  receive_wait_time_seconds  = local.long_poll_seconds
  kms_master_key_id          = var.kms_key_arn
  sqs_managed_sse_enabled    = local.sse_managed
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.notification_dlq.arn
    maxReceiveCount     = var.max_receive_count
  })
  tags = var.tags
}
