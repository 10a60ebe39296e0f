# Either register a new key pair from a public-key file (Terraform owns it and deletes it on destroy)
# or look up an existing one with a data source (Terraform never owns it, so destroy leaves it).
#
# Do not adopt an existing key pair with an `import` block: an imported resource is managed like any
# other and `terraform destroy` deletes it. If that has already happened, stop managing it without
# deleting it:
#
#   removed {
#     from = aws_key_pair.admin
#     lifecycle { destroy = false }
#   }

resource "aws_key_pair" "admin" {
  count = var.public_key_path != null ? 1 : 0

  key_name_prefix = "${var.name}-"
  public_key      = trimspace(file(pathexpand(coalesce(var.public_key_path, "-"))))
}

data "aws_key_pair" "existing" {
  count = var.existing_key_name != null ? 1 : 0

  key_name = var.existing_key_name
}

locals {
  key_name = var.existing_key_name != null ? data.aws_key_pair.existing[0].key_name : aws_key_pair.admin[0].key_name
  # The private key that matches public_key_path, by the usual ssh-keygen naming.
  ssh_identity = var.public_key_path != null ? trimsuffix(pathexpand(var.public_key_path), ".pub") : "<private key of ${coalesce(var.existing_key_name, "-")}>"
}
