provider "aws" {
  region = var.region

  # Every resource carries these tags, so a forgotten deployment is easy to find in the billing
  # console and with `aws resourcegroupstaggingapi get-resources --tag-filters Key=Project,Values=rtap`.
  default_tags {
    tags = merge(var.extra_tags, {
      Project     = "rtap"
      Deployment  = var.name
      ManagedBy   = "terraform"
      TtlHours    = tostring(var.ttl_hours)
      Environment = "demo"
    })
  }
}
