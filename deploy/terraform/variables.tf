variable "name" {
  description = "Prefix of every resource name; also the Deployment tag."
  type        = string
  default     = "rtap"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name must be 2-31 characters: lower-case letters, digits and '-', starting with a letter."
  }
}

variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must look like us-east-1."
  }
}

variable "availability_zone" {
  description = <<-EOT
    Availability zone of the public subnet, e.g. us-east-1b. Null picks the first zone of the region
    where instance_type is offered. An explicit zone is checked at plan time: not every type exists in
    every zone (the error that stopped the system rtap replaces).
  EOT
  type        = string
  default     = null

  validation {
    condition     = var.availability_zone == null || startswith(coalesce(var.availability_zone, "-"), var.region)
    error_message = "availability_zone must be a zone of the chosen region (e.g. us-east-1b for us-east-1)."
  }
}

variable "vpc_cidr" {
  description = "Address range of the VPC; the public subnet is its first /24."
  type        = string
  default     = "10.42.0.0/16"

  validation {
    condition     = can(cidrnetmask(var.vpc_cidr)) && can(cidrsubnet(var.vpc_cidr, 8, 0))
    error_message = "vpc_cidr must be an IPv4 CIDR of /24 or larger, e.g. 10.42.0.0/16."
  }
}

variable "min_cidr_prefix" {
  description = <<-EOT
    The widest network admin_cidr and ui_cidrs may name: /24 (256 addresses) by default, a /32 is one
    address. Wider ones are refused unless allow_wide_cidrs.
  EOT
  type        = number
  default     = 24

  validation {
    condition     = var.min_cidr_prefix >= 8 && var.min_cidr_prefix <= 32 && floor(var.min_cidr_prefix) == var.min_cidr_prefix
    error_message = "min_cidr_prefix must be a whole number from 8 to 32."
  }
}

variable "allow_wide_cidrs" {
  description = <<-EOT
    Accept admin_cidr and ui_cidrs wider than min_cidr_prefix: a deliberate choice, never a default. Even
    then SSH is never opened wider than a /8, and UIs open to (half) the internet make every plan warn.
  EOT
  type        = bool
  default     = false
}

variable "admin_cidr" {
  description = <<-EOT
    The one network allowed to SSH to the host, normally your own address as a /32
    (`curl -s https://checkip.amazonaws.com` then append /32). Never the whole internet.
  EOT
  type        = string

  validation {
    condition = (
      can(cidrnetmask(var.admin_cidr))
      && try(cidrsubnet(var.admin_cidr, 0, 0) == var.admin_cidr, false)
      && try(tonumber(split("/", var.admin_cidr)[1]) >= 8, false)
    )
    error_message = "admin_cidr must be an IPv4 CIDR in canonical form with a prefix of /8 or longer (e.g. 203.0.113.7/32); 0.0.0.0/0 is refused."
  }

  validation {
    condition     = var.allow_wide_cidrs || try(tonumber(split("/", var.admin_cidr)[1]) >= var.min_cidr_prefix, false)
    error_message = "admin_cidr is wider than /${var.min_cidr_prefix} (min_cidr_prefix): name your own address (a /32), or set allow_wide_cidrs = true to mean it."
  }
}

variable "publish_web_uis" {
  description = <<-EOT
    Publish the rtap dashboard and Metabase on the host's public address over TLS (9443, 3443: the host's
    Caddy, with the collector's certificate), to ui_cidrs. Off by default: they stay on the host's loopback
    and are reached through an SSH tunnel (the tunnel_command output). Their plain HTTP ports and the Spark UI
    are never published.
  EOT
  type        = bool
  default     = false
}

variable "publish_collector" {
  description = <<-EOT
    Open the collector's TLS ports to the world: 443, and 80 (it only redirects to https and answers Let's
    Encrypt's challenge). The collector is the one service meant for the public: web pages send their events
    to it, and it takes only events with a write key, from that key's origins (docs/collector.md). False keeps
    it on the host's loopback, like the web UIs.
  EOT
  type        = bool
  default     = true
}

variable "collector_domain" {
  description = <<-EOT
    A DNS name that points at the host (an A record to the public_ip output) for the collector's certificate,
    which Caddy gets from Let's Encrypt. Empty: https://<public ip> with a certificate of Caddy's own local CA,
    which browsers do not trust (make aws-validate fetches that CA to check the collector over TLS anyway).
  EOT
  type        = string
  default     = ""

  validation {
    condition     = var.collector_domain == "" || can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.collector_domain))
    error_message = "collector_domain must be a lower-case DNS name such as collect.shop.example, or empty."
  }
}

variable "ui_cidrs" {
  description = <<-EOT
    With publish_web_uis: the networks allowed to reach the rtap dashboard (9443) and Metabase (3443), over
    TLS. Null means [admin_cidr]. ["0.0.0.0/0"] opens them to the world: a deliberate choice, see docs/aws.md
    (both ask for a login).
  EOT
  type        = list(string)
  default     = null

  validation {
    condition = var.ui_cidrs == null || alltrue([
      for cidr in coalesce(var.ui_cidrs, []) :
      can(cidrnetmask(cidr)) && try(cidrsubnet(cidr, 0, 0) == cidr, false)
    ])
    error_message = "ui_cidrs must be IPv4 CIDRs in canonical form, e.g. [\"203.0.113.7/32\"]."
  }

  validation {
    condition = var.ui_cidrs == null || var.allow_wide_cidrs || alltrue([
      for cidr in coalesce(var.ui_cidrs, []) : try(tonumber(split("/", cidr)[1]) >= var.min_cidr_prefix, false)
    ])
    error_message = "ui_cidrs has a network wider than /${var.min_cidr_prefix} (min_cidr_prefix): list the networks that need the UIs, or set allow_wide_cidrs = true to mean it."
  }
}

variable "public_key_path" {
  description = "Path of an SSH public key file to register as a new EC2 key pair (deleted again on destroy)."
  type        = string
  default     = null
}

variable "existing_key_name" {
  description = <<-EOT
    Name of an EC2 key pair that already exists in the region, e.g. one created by hand in the console.
    It is only looked up (a data source), never managed, so `terraform destroy` leaves it alone. When
    set, public_key_path is not used.
  EOT
  type        = string
  default     = null

  validation {
    condition     = var.existing_key_name != null || var.public_key_path != null
    error_message = "Set public_key_path (a new key pair) or existing_key_name (adopt an existing one)."
  }

  validation {
    # EC2's rule for key pair names: up to 255 ASCII characters.
    condition     = var.existing_key_name == null || can(regex("^[ -~]{1,255}$", coalesce(var.existing_key_name, "-")))
    error_message = "existing_key_name must be the key pair's name in EC2: 1 to 255 printable ASCII characters."
  }
}

variable "ssh_private_key_path" {
  description = <<-EOT
    The private key that logs in to the host, for the ssh_command output and `make aws-validate`. Null:
    public_key_path without .pub, or ~/.ssh/<existing_key_name>.pem for an adopted key pair.
  EOT
  type        = string
  default     = null
}

variable "instance_type" {
  description = <<-EOT
    EC2 instance type. The stack (Kafka, Spark, ClickHouse, Metabase and its PostgreSQL, the dashboard)
    needs about 6 GiB; t3.large has 8 GiB. 1 GiB types such as t2.micro run out of memory and hang.
  EOT
  type        = string
  default     = "t3.large"
}

variable "root_volume_gib" {
  description = "Size of the encrypted gp3 root volume: the container images, their build cache and the data."
  type        = number
  default     = 30

  validation {
    condition     = var.root_volume_gib >= 30 && var.root_volume_gib <= 500
    error_message = "root_volume_gib must be between 30 and 500."
  }
}

variable "repo_url" {
  description = "Git repository the host clones over HTTPS (`make aws-up` passes this clone's origin)."
  type        = string

  validation {
    # The value is pasted into the bootstrap script: only URL characters, no quotes or spaces.
    condition     = can(regex("^https://[A-Za-z0-9._~/@:-]+$", var.repo_url))
    error_message = "repo_url must be an https:// Git URL without quotes, spaces or shell characters."
  }
}

variable "repo_ref" {
  description = "Branch, tag or commit the host checks out (`make aws-up` passes this clone's HEAD commit)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$", var.repo_ref))
    error_message = "repo_ref must be a branch, tag or commit name (letters, digits, '.', '_', '/', '-')."
  }
}

variable "ttl_hours" {
  description = <<-EOT
    Cost guard: the host is shut down this many hours after it is created (0 disables the guard).
    Two independent mechanisms enforce it: a timer on the host and an EventBridge Scheduler schedule
    that calls EC2 directly, so a host that has stopped responding is still shut down.
  EOT
  type        = number
  default     = 4

  validation {
    condition     = var.ttl_hours >= 0 && var.ttl_hours <= 720 && floor(var.ttl_hours) == var.ttl_hours
    error_message = "ttl_hours must be a whole number of hours between 0 (no guard) and 720."
  }
}

variable "ttl_action" {
  description = <<-EOT
    What the cost guard does. "terminate" (default) ends every charge: the instance and its root volume
    are deleted (the network costs nothing and stays until `terraform destroy`). "stop" keeps the volume
    (about USD 0.08 per GiB-month) so the host can be started again.
  EOT
  type        = string
  default     = "terminate"

  validation {
    condition     = contains(["terminate", "stop"], var.ttl_action)
    error_message = "ttl_action must be \"terminate\" or \"stop\"."
  }
}

variable "simulated_producer" {
  description = <<-EOT
    Run the stack's simulated producer (the compose profile `producer`), so that `make aws-validate` sees
    events flowing on a fresh host. false for a host that gets only your own producers' events (they
    reach Kafka on the host's 127.0.0.1:9094, e.g. through an SSH tunnel; docs/compose.md).
  EOT
  type        = bool
  default     = true
}

variable "extra_tags" {
  description = "More tags for every resource (e.g. Owner, CostCenter)."
  type        = map(string)
  default     = {}
}
