# Either register a new key pair from a public-key file (Terraform owns it and deletes it on destroy)
# or look up an existing one by name with a data source (Terraform never owns it, so destroy leaves it):
# the way to adopt a key pair created by hand in the EC2 console. existing_key_name wins when both are
# set, because `make aws-up` passes a default public key of ~/.ssh whenever AWS_KEY_NAME is not given
# (and terraform.tfvars may name the key pair instead).
#
# Do not adopt an existing key pair with an `import` block: an imported resource is managed like any
# other and `terraform destroy` deletes it (and the provider cannot read a key pair's public key back, so
# the next plan replaces it). If that has already happened, stop managing it without deleting it:
#
#   removed {
#     from = aws_key_pair.admin
#     lifecycle { destroy = false }
#   }

resource "aws_key_pair" "admin" {
  count = var.existing_key_name == null ? 1 : 0

  key_name_prefix = "${var.name}-"
  public_key      = trimspace(file(pathexpand(coalesce(var.public_key_path, "-"))))
}

data "aws_key_pair" "existing" {
  count = var.existing_key_name != null ? 1 : 0

  key_name = var.existing_key_name
}

locals {
  key_name = var.existing_key_name != null ? data.aws_key_pair.existing[0].key_name : aws_key_pair.admin[0].key_name
  # The private key that matches: ssh_private_key_path, else by the usual names: the public key file
  # without .pub (ssh-keygen), or ~/.ssh/<name>.pem for an adopted key pair (the file the EC2 console
  # downloads when it creates one). `make aws-validate` logs in with it.
  ssh_private_key = pathexpand(coalesce(
    var.ssh_private_key_path,
    var.existing_key_name != null ? "~/.ssh/${coalesce(var.existing_key_name, "-")}.pem" : trimsuffix(coalesce(var.public_key_path, "-"), ".pub"),
  ))
}
