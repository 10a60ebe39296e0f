# One VPC with one public subnet: the host needs inbound access for its UIs and outbound access for
# packages, images and the Git clone. Nothing else lives here, so no private subnets or NAT (which
# would cost about USD 0.045 per hour on its own).

data "aws_ec2_instance_type_offerings" "zones_offering_type" {
  location_type = "availability-zone"

  filter {
    name   = "instance-type"
    values = [var.instance_type]
  }
}

locals {
  zones_offering_type = sort(data.aws_ec2_instance_type_offerings.zones_offering_type.locations)
  availability_zone   = var.availability_zone != null ? var.availability_zone : try(local.zones_offering_type[0], "none")
}

resource "aws_vpc" "main" {
  #checkov:skip=CKV2_AWS_11:Flow logs would need a log group or bucket (and its key) that outlive a short-lived demo host; the security group is the control here.
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = { Name = var.name }
}

# The VPC's default security group would otherwise allow all traffic between its members; nothing
# uses it, so it is emptied.
resource "aws_default_security_group" "main" {
  vpc_id = aws_vpc.main.id

  tags = { Name = "${var.name}-default-unused" }
}

resource "aws_subnet" "public" {
  vpc_id                  = aws_vpc.main.id
  cidr_block              = cidrsubnet(var.vpc_cidr, 8, 0)
  availability_zone       = local.availability_zone
  map_public_ip_on_launch = false # the instance asks for its public address explicitly

  tags = { Name = "${var.name}-public" }

  lifecycle {
    precondition {
      condition     = contains(local.zones_offering_type, local.availability_zone)
      error_message = "Instance type ${var.instance_type} is not offered in availability zone ${local.availability_zone} of ${var.region}. Zones that offer it: [${join(", ", local.zones_offering_type)}]. Set availability_zone to one of them (or to null to pick the first)."
    }
  }
}

resource "aws_internet_gateway" "main" {
  vpc_id = aws_vpc.main.id

  tags = { Name = var.name }
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.main.id

  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.main.id
  }

  tags = { Name = "${var.name}-public" }
}

resource "aws_route_table_association" "public" {
  subnet_id      = aws_subnet.public.id
  route_table_id = aws_route_table.public.id
}
