# ECS Fargate: the API behind an HTTPS load balancer (WAF in front), Celery workers, one beat, the outbound
# consumer and the inbox processor, all from one image. Workers and the outbound consumer scale on their queue depth.

locals {
  # One command per process; the same as docker-compose.yml (tests check both name real `zixly` commands).
  commands = {
    api      = ["gunicorn", "-c", "python:api.gunicorn_conf", "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "4", "--worker-tmp-dir", "/var/lib/zixly/tmp", "console.wsgi:app"]
    worker   = ["zixly", "worker", "--concurrency", "2"]
    beat     = ["zixly", "beat", "--state-dir", "/var/lib/zixly/beat"]
    outbound = ["zixly", "outbound"]
    inbox    = ["zixly", "inbox", "--heartbeat", "/var/lib/zixly/inbox-alive"]
  }

  health_checks = {
    api      = ["CMD", "python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=3)"]
    worker   = ["CMD-SHELL", "celery -A workers.app inspect ping --destination celery@$(hostname) --timeout 10"]
    beat     = ["CMD", "python", "-c", "import pathlib, sys, time; d = pathlib.Path('/var/lib/zixly/beat'); sys.exit(0 if any(time.time() - p.stat().st_mtime < 600 for p in d.iterdir()) else 1)"]
    outbound = ["CMD", "python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9100/metrics', timeout=3)"]
    inbox    = ["CMD", "python", "-c", "import os, sys, time; sys.exit(0 if time.time() - os.stat('/var/lib/zixly/inbox-alive').st_mtime < 30 else 1)"]
  }

  sizes = {
    api      = { cpu = 512, memory = 1024, count = var.api_count, stop_timeout = 30 }
    worker   = { cpu = 1024, memory = 2048, count = var.worker_min, stop_timeout = 120 }
    beat     = { cpu = 256, memory = 512, count = 1, stop_timeout = 30 }
    outbound = { cpu = 512, memory = 1024, count = var.outbound_min, stop_timeout = 120 }
    inbox    = { cpu = 512, memory = 1024, count = 1, stop_timeout = 60 }
  }

  # Plain settings, and settings taken from Secrets Manager (every name is one core/platform/config.py reads).
  environment = {
    AWS_DEFAULT_REGION    = var.region
    ZIXLY_HOME            = "/var/lib/zixly"
    ZIXLY_PUBLIC_BASE_URL = var.public_base_url
    ZIXLY_TRUSTED_PROXIES = "1"
    # the app reads the data keys itself (cached), so rotation needs no new task definition
    ZIXLY_DATA_KEYS_SECRET_ID = var.data_keys_secret_arn
    PROMETHEUS_MULTIPROC_DIR  = "/var/lib/zixly/prometheus"
    ZIXLY_WORKER_METRICS_PORT = "9100"
    ZIXLY_JWT_ISSUER          = var.oidc_issuer
    ZIXLY_JWKS_URL            = var.oidc_jwks_url
  }
  secrets = {
    DATABASE_URL                      = "${var.database_secret_arn}:url::"
    REDIS_URL                         = "${var.redis_secret_arn}:url::"
    ZIXLY_XERO_APP_WEBHOOK_SECRETS    = "${var.provider_app_secret_arns["xero"]}:webhook_secrets::"
    ZIXLY_HUBSPOT_APP_WEBHOOK_SECRETS = "${var.provider_app_secret_arns["hubspot"]}:webhook_secrets::"
    ZIXLY_SHOPIFY_APP_WEBHOOK_SECRETS = "${var.provider_app_secret_arns["shopify"]}:webhook_secrets::"
    ZIXLY_METRICS_TOKEN               = "${var.metrics_token_secret_arn}:token::"
    ZIXLY_CONSOLE_OIDC_CLIENT_ID      = "${var.console_secret_arn}:client_id::"
    ZIXLY_CONSOLE_OIDC_CLIENT_SECRET  = "${var.console_secret_arn}:client_secret::"
    ZIXLY_CONSOLE_SECRET_KEY          = "${var.console_secret_arn}:session_key::"
  }
  secret_arns = distinct(concat([var.database_secret_arn, var.redis_secret_arn, var.data_keys_secret_arn,
  var.metrics_token_secret_arn, var.console_secret_arn],
  values(var.provider_app_secret_arns)))
}

resource "aws_ecs_cluster" "main" {
  name = var.name
  tags = var.tags

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  configuration {
    execute_command_configuration {
      kms_key_id = var.kms_key_arn
      logging    = "OVERRIDE"
      log_configuration {
        cloud_watch_encryption_enabled = true
        cloud_watch_log_group_name     = aws_cloudwatch_log_group.exec.name
      }
    }
  }
}

resource "aws_cloudwatch_log_group" "app" {
  name              = "/zixly/${var.name}/app"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_cloudwatch_log_group" "exec" {
  name              = "/zixly/${var.name}/ecs-exec"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

# --- IAM: the execution role starts containers (pull, logs, secrets); the task role is what the code may do --
data "aws_iam_policy_document" "ecs_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "execution" {
  name_prefix        = "${var.name}-exec-"
  assume_role_policy = data.aws_iam_policy_document.ecs_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "execution_secrets" {
  statement {
    actions   = ["secretsmanager:GetSecretValue"]
    resources = local.secret_arns
  }
  statement {
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "execution_secrets" {
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution_secrets.json
}

resource "aws_iam_role" "task" {
  name_prefix        = "${var.name}-task-"
  assume_role_policy = data.aws_iam_policy_document.ecs_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "task" {
  statement {
    sid = "Queues"
    actions = ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
    resources = var.queue_arns
  }
  statement {
    sid       = "Artifacts"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"]
    resources = [var.bucket_arn, "${var.bucket_arn}/*"]
  }
  statement {
    sid       = "Encryption"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
  statement {
    sid       = "EcsExec"
    actions   = ["ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel"]
    resources = ["*"] # these actions have no resource-level permissions
  }
}

resource "aws_iam_role_policy" "task" {
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}

# --- network: the load balancer takes HTTPS from anywhere; containers take traffic only from it ---------------
resource "aws_security_group" "alb" {
  name_prefix = "${var.name}-alb-"
  description = "API load balancer"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  security_group_id = aws_security_group.alb.id
  description       = "HTTPS from the internet (clients and provider webhooks)"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "alb_to_api" {
  security_group_id            = aws_security_group.alb.id
  description                  = "To the API containers"
  referenced_security_group_id = aws_security_group.app.id
  ip_protocol                  = "tcp"
  from_port                    = 8000
  to_port                      = 8000
}

resource "aws_security_group" "app" {
  name_prefix = "${var.name}-app-"
  description = "Zixly containers"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "app_from_alb" {
  security_group_id            = aws_security_group.app.id
  description                  = "API traffic from the load balancer"
  referenced_security_group_id = aws_security_group.alb.id
  ip_protocol                  = "tcp"
  from_port                    = 8000
  to_port                      = 8000
}

resource "aws_vpc_security_group_egress_rule" "app_https" {
  security_group_id = aws_security_group.app.id
  description       = "HTTPS to provider APIs and AWS endpoints (through NAT)"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "app_in_vpc" {
  for_each          = { postgres = 5432, redis = 6379 }
  security_group_id = aws_security_group.app.id
  description       = "${each.key} inside the VPC"
  cidr_ipv4         = var.vpc_cidr_block
  ip_protocol       = "tcp"
  from_port         = each.value
  to_port           = each.value
}

# --- load balancer ----------------------------------------------------------------------------------------------
resource "aws_lb" "api" {
  #checkov:skip=CKV2_AWS_76:the web ACL (modules/network) has KnownBadInputs, the Log4j rule (CKV_AWS_192 passes on it); this check also wants AnonymousIpList, which blocks cloud-hosted senders such as provider webhooks
  name                       = "${var.name}-api"
  load_balancer_type         = "application"
  internal                   = false
  subnets                    = var.public_subnet_ids
  security_groups            = [aws_security_group.alb.id]
  drop_invalid_header_fields = true
  enable_deletion_protection = true
  tags                       = var.tags
}

resource "aws_lb_target_group" "api" {
  name_prefix          = "zxapi-"
  port                 = 8000
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 30
  tags                 = var.tags

  health_check {
    path                = "/health"
    matcher             = "200"
    interval            = 15
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.api.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn
  tags              = var.tags

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.api.arn
  }
}

resource "aws_wafv2_web_acl_association" "api" {
  resource_arn = aws_lb.api.arn
  web_acl_arn  = var.waf_web_acl_arn
}

# --- task definitions and services ------------------------------------------------------------------------------
resource "aws_ecs_task_definition" "service" {
  for_each = local.sizes

  family                   = "${var.name}-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = each.value.cpu
  memory                   = each.value.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  tags                     = var.tags

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  # the root filesystem is read-only; this task-local volume is the one writable place (beat state, temp files)
  volume {
    name = "state"
  }

  container_definitions = jsonencode([{
    name                   = each.key
    image                  = var.image
    command                = local.commands[each.key]
    essential              = true
    user                   = "10001:10001"
    readonlyRootFilesystem = true
    stopTimeout            = each.value.stop_timeout
    environment            = [for k, v in local.environment : { name = k, value = v }]
    secrets                = [for k, v in local.secrets : { name = k, valueFrom = v }]
    portMappings           = each.key == "api" ? [{ containerPort = 8000, protocol = "tcp" }] : []
    mountPoints            = [{ sourceVolume = "state", containerPath = "/var/lib/zixly", readOnly = false }]
    healthCheck            = { command = local.health_checks[each.key], interval = 30, timeout = 20, retries = 3, startPeriod = 60 }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.app.name
        awslogs-region        = var.region
        awslogs-stream-prefix = each.key
      }
    }
  }])
}

resource "aws_ecs_service" "service" {
  for_each = local.sizes

  name                   = each.key
  cluster                = aws_ecs_cluster.main.id
  task_definition        = aws_ecs_task_definition.service[each.key].arn
  desired_count          = each.value.count
  launch_type            = "FARGATE"
  platform_version       = "LATEST"
  enable_execute_command = true
  propagate_tags         = "SERVICE"
  tags                   = var.tags

  # beat must never run twice: stop the old one before starting the new one
  deployment_minimum_healthy_percent = each.key == "beat" ? 0 : 100
  deployment_maximum_percent         = each.key == "beat" ? 100 : 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.app.id]
    assign_public_ip = false
  }

  dynamic "load_balancer" {
    for_each = each.key == "api" ? [1] : []
    content {
      target_group_arn = aws_lb_target_group.api.arn
      container_name   = "api"
      container_port   = 8000
    }
  }

  lifecycle {
    ignore_changes = [desired_count] # autoscaling owns it for worker and outbound
  }

  depends_on = [aws_lb_listener.https]
}

# --- autoscaling on queue depth ---------------------------------------------------------------------------------
resource "aws_appautoscaling_target" "scaled" {
  for_each = {
    worker   = { min = var.worker_min, max = var.worker_max }
    outbound = { min = var.outbound_min, max = var.outbound_max }
  }
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.main.name}/${aws_ecs_service.service[each.key].name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = each.value.min
  max_capacity       = each.value.max
}

# Outbound: the messages waiting in every outbound queue, per running consumer task.
resource "aws_appautoscaling_policy" "outbound_backlog" {
  name               = "${var.name}-outbound-backlog"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.scaled["outbound"].service_namespace
  resource_id        = aws_appautoscaling_target.scaled["outbound"].resource_id
  scalable_dimension = aws_appautoscaling_target.scaled["outbound"].scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.outbound_backlog_per_task
    scale_in_cooldown  = 300
    scale_out_cooldown = 60

    customized_metric_specification {
      dynamic "metrics" {
        for_each = var.outbound_queue_names
        content {
          id          = "q${metrics.key}"
          return_data = false
          metric_stat {
            stat = "Sum"
            metric {
              namespace   = "AWS/SQS"
              metric_name = "ApproximateNumberOfMessagesVisible"
              dimensions {
                name  = "QueueName"
                value = metrics.value
              }
            }
          }
        }
      }
      metrics {
        id          = "tasks"
        return_data = false
        metric_stat {
          stat = "Average"
          metric {
            namespace   = "ECS/ContainerInsights"
            metric_name = "RunningTaskCount"
            dimensions {
              name  = "ClusterName"
              value = aws_ecs_cluster.main.name
            }
            dimensions {
              name  = "ServiceName"
              value = "outbound"
            }
          }
        }
      }
      metrics {
        id          = "backlog_per_task"
        label       = "Outbound messages waiting per consumer task"
        expression  = "(${join(" + ", [for i, _ in var.outbound_queue_names : "q${i}"])}) / tasks"
        return_data = true
      }
    }
  }
}

# Workers: the Celery queue depth (zixly_celery_queue_depth, published to CloudWatch as Zixly/CeleryQueueDepth)
# per running worker task; and CPU, so the workers still scale if that metric stops arriving.
resource "aws_appautoscaling_policy" "worker_backlog" {
  name               = "${var.name}-worker-backlog"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.scaled["worker"].service_namespace
  resource_id        = aws_appautoscaling_target.scaled["worker"].resource_id
  scalable_dimension = aws_appautoscaling_target.scaled["worker"].scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.worker_backlog_per_task
    scale_in_cooldown  = 300
    scale_out_cooldown = 60

    customized_metric_specification {
      metrics {
        id          = "depth"
        return_data = false
        metric_stat {
          stat = "Maximum"
          metric {
            namespace   = "Zixly"
            metric_name = "CeleryQueueDepth"
            dimensions {
              name  = "Queue"
              value = "zixly"
            }
          }
        }
      }
      metrics {
        id          = "tasks"
        return_data = false
        metric_stat {
          stat = "Average"
          metric {
            namespace   = "ECS/ContainerInsights"
            metric_name = "RunningTaskCount"
            dimensions {
              name  = "ClusterName"
              value = aws_ecs_cluster.main.name
            }
            dimensions {
              name  = "ServiceName"
              value = "worker"
            }
          }
        }
      }
      metrics {
        id          = "backlog_per_task"
        label       = "Celery tasks waiting per worker task"
        expression  = "depth / tasks"
        return_data = true
      }
    }
  }
}

resource "aws_appautoscaling_policy" "worker_cpu" {
  name               = "${var.name}-worker-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.scaled["worker"].service_namespace
  resource_id        = aws_appautoscaling_target.scaled["worker"].resource_id
  scalable_dimension = aws_appautoscaling_target.scaled["worker"].scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value = 70
    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}
