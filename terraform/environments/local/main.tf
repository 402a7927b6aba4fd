# LocalStack: the queues, the bucket and the secrets, for trying the Terraform modules without AWS.
#   docker compose up -d localstack
#   cd terraform/environments/local && terraform init && terraform apply
# Credentials: any, e.g. AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test in the shell (never in this file).
# (`docker compose up` does not need this: its init service runs `zixly aws bootstrap` for the same resources.)

terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.60, < 6.0"
    }
  }
}

provider "aws" {
  region                      = var.region
  s3_use_path_style           = true
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_requesting_account_id  = true

  endpoints {
    s3             = var.localstack_endpoint
    sqs            = var.localstack_endpoint
    secretsmanager = var.localstack_endpoint
    sts            = var.localstack_endpoint
  }
}

module "queue" {
  source = "../../modules/queue"
  tags   = local.tags
}

module "storage" {
  source        = "../../modules/storage"
  bucket_name   = var.bucket_name
  force_destroy = true
  tags          = local.tags
}

module "secrets" {
  source                  = "../../modules/secrets"
  recovery_window_in_days = 0
  tags                    = local.tags
}

locals {
  tags = { project = "zixly", environment = "local" }
}
