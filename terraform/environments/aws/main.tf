# Zixly on AWS: network + WAF, RDS PostgreSQL behind RDS Proxy, ElastiCache Redis, SQS, S3, Secrets Manager,
# and ECS Fargate services. docs/deploy.md has the order of a first deploy and of every later one.

terraform {
  required_version = ">= 1.10" # the S3 backend's use_lockfile
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.60, < 6.0"
    }
  }
  # State in S3 with locking; pass bucket/key/region with `terraform init -backend-config=...`.
  backend "s3" {
    encrypt      = true
    use_lockfile = true
  }
}

provider "aws" {
  region = var.region
  default_tags {
    tags = local.tags
  }
}

locals {
  tags = { project = "zixly", environment = var.environment }
}

data "aws_caller_identity" "current" {}

# One customer-managed key for everything Zixly stores: queues, bucket, secrets, database, Redis, logs.
# A key policy's "*" resource means this key itself (the only form a key policy takes); IAM-policy checks
# read it as "every resource".
data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_109:a key policy's resource "*" is the key itself; the account administers its own key
  #checkov:skip=CKV_AWS_111:a key policy's resource "*" is the key itself; the account administers its own key
  #checkov:skip=CKV_AWS_356:a key policy's resource "*" is the key itself, not every resource
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
  statement {
    sid       = "CloudWatchLogsEncrypt"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:aws:logs:${var.region}:${data.aws_caller_identity.current.account_id}:*"]
    }
  }
}

resource "aws_kms_key" "main" {
  description             = "Zixly ${var.environment}: data at rest"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "main" {
  name          = "alias/zixly-${var.environment}"
  target_key_id = aws_kms_key.main.key_id
}

module "network" {
  source             = "../../modules/network"
  name               = "zixly-${var.environment}"
  availability_zones = var.availability_zones
  kms_key_arn        = aws_kms_key.main.arn
}

module "queue" {
  source      = "../../modules/queue"
  kms_key_arn = aws_kms_key.main.arn
}

module "storage" {
  source      = "../../modules/storage"
  bucket_name = "zixly-artifacts-${data.aws_caller_identity.current.account_id}-${var.environment}"
  kms_key_arn = aws_kms_key.main.arn
}

module "secrets" {
  source      = "../../modules/secrets"
  name_prefix = "zixly-${var.environment}"
  kms_key_arn = aws_kms_key.main.arn
}

module "compute" {
  source                   = "../../modules/compute"
  name                     = "zixly-${var.environment}"
  region                   = var.region
  image                    = var.image
  vpc_id                   = module.network.vpc_id
  vpc_cidr_block           = module.network.vpc_cidr_block
  public_subnet_ids        = module.network.public_subnet_ids
  private_subnet_ids       = module.network.private_subnet_ids
  certificate_arn          = var.certificate_arn
  waf_web_acl_arn          = module.network.waf_web_acl_arn
  kms_key_arn              = aws_kms_key.main.arn
  queue_arns               = module.queue.queue_arns
  outbound_queue_names     = module.queue.outbound_queue_names
  bucket_arn               = module.storage.bucket_arn
  database_secret_arn      = module.secrets.database_secret_arn
  redis_secret_arn         = module.secrets.redis_secret_arn
  data_keys_secret_arn     = module.secrets.data_encryption_key_arn
  metrics_token_secret_arn = module.secrets.metrics_token_secret_arn
  console_secret_arn       = module.secrets.console_secret_arn
  oidc_issuer              = var.oidc_issuer
  oidc_jwks_url            = var.oidc_jwks_url
  provider_app_secret_arns = module.secrets.provider_app_secret_arns
  public_base_url          = var.public_base_url
}

module "database" {
  source                    = "../../modules/database"
  name                      = "zixly-${var.environment}"
  vpc_id                    = module.network.vpc_id
  subnet_ids                = module.network.private_subnet_ids
  client_security_group_ids = [module.compute.app_security_group_id]
  kms_key_arn               = aws_kms_key.main.arn
  app_secret_arn            = module.secrets.database_secret_arn
}

module "cache" {
  source                    = "../../modules/cache"
  name                      = "zixly-${var.environment}"
  vpc_id                    = module.network.vpc_id
  subnet_ids                = module.network.private_subnet_ids
  client_security_group_ids = [module.compute.app_security_group_id]
  auth_token                = var.redis_auth_token
  kms_key_arn               = aws_kms_key.main.arn
}
