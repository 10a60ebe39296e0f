# The host's name in its certificate (the collector's and the published UIs'): the domain given, else its IP.
locals {
  site = var.collector_domain != "" ? var.collector_domain : aws_instance.host.public_ip
}

output "public_ip" {
  description = "Public IPv4 address of the host."
  value       = aws_instance.host.public_ip
}

output "dashboard_url" {
  description = "The rtap dashboard (its password: RTAP_DASHBOARD_PASSWORD in the host's deploy/compose/.env); on this machine while tunnel_command runs, unless publish_web_uis."
  value       = var.publish_web_uis ? "https://${local.site}:9443" : "http://127.0.0.1:8050"
}

output "metabase_url" {
  description = "Metabase (its admin password is in the host's deploy/compose/.env, see docs/aws.md); on this machine while tunnel_command runs, unless publish_web_uis."
  value       = var.publish_web_uis ? "https://${local.site}:3443" : "http://127.0.0.1:3000"
}

output "collector_url" {
  description = "The collector web pages send their events to (the demo shop: <collector_url>/shop/); on this machine while tunnel_command runs, unless publish_collector."
  value       = var.publish_collector ? "https://${local.site}" : "http://127.0.0.1:8070"
}

output "spark_ui_url" {
  description = "Spark UI of the streaming job, on this machine while tunnel_command runs."
  value       = "http://127.0.0.1:4040"
}

output "tunnel_command" {
  description = "The web UIs on this machine's loopback, through SSH (Ctrl-C ends it)."
  value       = "ssh -i ${local.ssh_private_key} -N -L 8050:127.0.0.1:8050 -L 3000:127.0.0.1:3000 -L 4040:127.0.0.1:4040 -L 8070:127.0.0.1:8070 ubuntu@${aws_instance.host.public_ip}"
}

output "ssh_command" {
  description = "Log in to the host; the bootstrap log is /var/log/rtap-bootstrap.log."
  value       = "ssh -i ${local.ssh_private_key} ubuntu@${aws_instance.host.public_ip}"
}

output "ssh_private_key" {
  description = "The private key `make aws-validate` logs in with (AWS_SSH_KEY overrides it)."
  value       = local.ssh_private_key
}

output "key_name" {
  description = "The EC2 key pair the host accepts: created from public_key_path, or adopted by name."
  value       = local.key_name
}

output "instance_id" {
  description = "EC2 instance id."
  value       = aws_instance.host.id
}

output "availability_zone" {
  description = "The zone the host runs in."
  value       = aws_subnet.public.availability_zone
}

output "shutdown_at" {
  description = "When the cost guard stops or terminates the host (UTC), or null without a TTL."
  value       = var.ttl_hours > 0 ? time_offset.ttl[0].rfc3339 : null
}
