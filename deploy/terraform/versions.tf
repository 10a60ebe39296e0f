# Versions are pinned so that a plan made today means the same thing next month.
# Terraform >= 1.11: S3 native state locking (`use_lockfile`) is GA there, and `removed` blocks
# with `lifecycle { destroy = false }` exist (see keypair.tf).
terraform {
  required_version = "~> 1.11"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
    time = {
      source  = "hashicorp/time"
      version = "~> 0.13"
    }
  }
}
