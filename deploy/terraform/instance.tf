# The host: Ubuntu 24.04, Docker Engine with the Compose plugin, the rtap compose stack. Its
# bootstrap (user_data.sh.tftpl) is logged to /var/log/rtap-bootstrap.log on the host.

data "aws_ec2_instance_type" "selected" {
  instance_type = var.instance_type
}

locals {
  architecture = contains(data.aws_ec2_instance_type.selected.supported_architectures, "arm64") ? "arm64" : "amd64"
  # Kafka, Spark, ClickHouse, Metabase + PostgreSQL and the dashboard together need about 6 GiB.
  min_memory_mib = 8192
}

# Canonical publishes the current Ubuntu AMI of every region in this public parameter, so no AMI id
# is hard-coded and the region is free.
data "aws_ssm_parameter" "ubuntu_ami" {
  name = "/aws/service/canonical/ubuntu/server/24.04/stable/current/${local.architecture}/hvm/ebs-gp3/ami-id"
}

locals {
  user_data = templatefile("${path.module}/user_data.sh.tftpl", {
    repo_url    = var.repo_url
    repo_ref    = var.repo_ref
    ttl_minutes = var.ttl_hours * 60
    # Compose profiles of the stack (deploy/compose/.env's COMPOSE_PROFILES).
    compose_profiles = var.simulated_producer ? "producer" : ""
    # Where the dashboard and Metabase are published over TLS on the host (RTAP_UI_ADDRESS): its loopback,
    # reached through an SSH tunnel, unless publish_web_uis. Their plain HTTP ports stay on loopback.
    ui_address = var.publish_web_uis ? "0.0.0.0" : "127.0.0.1"
    # Where the collector's TLS ports are published (RTAP_COLLECTOR_ADDRESS), and the name its certificate
    # is for (empty: the host's public address, found at boot).
    collector_address = var.publish_collector ? "0.0.0.0" : "127.0.0.1"
    collector_domain  = var.collector_domain
  })
}

resource "aws_instance" "host" {
  #checkov:skip=CKV_AWS_88:The host serves its web UIs directly (no load balancer for one demo host); the security group limits who can reach them.
  #checkov:skip=CKV2_AWS_41:The host calls no AWS API, so it gets no IAM role (least privilege); the TTL schedule acts on it from outside.
  ami                                  = data.aws_ssm_parameter.ubuntu_ami.insecure_value
  instance_type                        = var.instance_type
  subnet_id                            = aws_subnet.public.id
  vpc_security_group_ids               = [aws_security_group.host.id]
  key_name                             = local.key_name
  associate_public_ip_address          = true
  ebs_optimized                        = true
  monitoring                           = true
  instance_initiated_shutdown_behavior = var.ttl_action
  user_data                            = local.user_data
  user_data_replace_on_change          = true

  metadata_options {
    http_endpoint = "enabled"
    http_tokens   = "required" # IMDSv2 only
    # One hop: processes on the host reach the metadata service, containers behind Docker's
    # bridge do not.
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.root_volume_gib
    encrypted             = true
    delete_on_termination = true
  }

  tags = { Name = "${var.name}-host" }

  lifecycle {
    # "current" moves when Canonical publishes a new image; a later apply must not replace a running
    # host (and its data) for that. `terraform apply -replace=aws_instance.host` takes the new one.
    ignore_changes = [ami]

    precondition {
      condition     = data.aws_ec2_instance_type.selected.memory_size >= local.min_memory_mib
      error_message = "Instance type ${var.instance_type} has ${data.aws_ec2_instance_type.selected.memory_size} MiB of memory; the stack needs at least ${local.min_memory_mib} MiB (e.g. t3.large). 1 GiB types such as t2.micro run out of memory and stop responding."
    }
  }
}
