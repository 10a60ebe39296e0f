# The host's only firewall. Inbound: SSH from the admin network; the collector's TLS ports (443, and 80 for
# the redirect and Let's Encrypt) from anywhere, unless publish_collector is false: web pages everywhere send
# their events there; and with publish_web_uis the dashboard and Metabase over TLS (the same Caddy: 9443, 3443)
# from ui_cidrs (otherwise they are reached through an SSH tunnel; the Spark UI always is).
# Kafka (9092/9093), ClickHouse (8123/9000) and PostgreSQL (5432) are never opened: they are reached
# only inside the compose network. Outbound: HTTP and HTTPS only (apt, Docker's registry, GitHub,
# PyPI, Maven Central). DNS, NTP and the instance metadata service are link-local VPC services that
# security groups do not filter, so they need no rule.

locals {
  ui_cidrs = var.ui_cidrs != null ? var.ui_cidrs : [var.admin_cidr]

  web_uis = {
    dashboard = { port = 9443, description = "rtap dashboard over TLS" }
    metabase  = { port = 3443, description = "Metabase over TLS" }
  }

  ui_rules = var.publish_web_uis ? {
    for pair in setproduct(keys(local.web_uis), local.ui_cidrs) :
    "${pair[0]} ${pair[1]}" => merge(local.web_uis[pair[0]], { cidr = pair[1] })
  } : {}

  # The collector behind Caddy (deploy/compose/tls): TLS, and port 80 for its redirect and ACME.
  collector_ports = var.publish_collector ? {
    https = { port = 443, description = "rtap collector over TLS: web pages' events" }
    http  = { port = 80, description = "rtap collector: redirect to https, Let's Encrypt challenge" }
  } : {}

  egress_ports = {
    http  = { port = 80, description = "HTTP: Ubuntu package mirrors" }
    https = { port = 443, description = "HTTPS: Docker packages and images, Git, PyPI, Maven Central" }
  }
}

resource "aws_security_group" "host" {
  name        = "${var.name}-host"
  description = "rtap host: SSH from the admin network, the collector (80/443) from anywhere, web UIs from ui_cidrs, HTTP(S) out"
  vpc_id      = aws_vpc.main.id

  tags = { Name = "${var.name}-host" }
}

resource "aws_vpc_security_group_ingress_rule" "ssh" {
  security_group_id = aws_security_group.host.id
  description       = "SSH from the admin network"
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
  cidr_ipv4         = var.admin_cidr
}

resource "aws_vpc_security_group_ingress_rule" "web_ui" {
  for_each = local.ui_rules

  security_group_id = aws_security_group.host.id
  description       = each.value.description
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  cidr_ipv4         = each.value.cidr
}

resource "aws_vpc_security_group_ingress_rule" "collector" {
  #checkov:skip=CKV_AWS_260:Port 80 of the public collector only redirects to https and answers Let's Encrypt's HTTP challenge; the collector takes only events with a write key from that key's origins.
  for_each = local.collector_ports

  security_group_id = aws_security_group.host.id
  description       = each.value.description
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "web" {
  for_each = local.egress_ports

  security_group_id = aws_security_group.host.id
  description       = each.value.description
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  cidr_ipv4         = "0.0.0.0/0"
}

# Open to the internet however it is split (0.0.0.0/1 and 128.0.0.0/1 are the world too): the addresses of
# the distinct networks add up to half of IPv4 or more. Only reachable with allow_wide_cidrs; then it warns.
check "web_uis_not_public" {
  assert {
    condition     = !var.publish_web_uis || sum(concat([0], [for cidr in toset(local.ui_cidrs) : pow(2, 32 - tonumber(split("/", cidr)[1]))])) < pow(2, 31)
    error_message = "ui_cidrs open the dashboard and Metabase to half the internet or more (behind their logins, over TLS). Keep it only for a short demo; see docs/aws.md."
  }
}
