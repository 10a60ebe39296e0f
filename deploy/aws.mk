# The AWS lifecycle: one host made by deploy/terraform that runs the compose stack.
# Included by the Makefile; `make help` lists the targets. docs/aws.md explains each step.
#
#   make aws-plan      terraform init + plan (what aws-up would change)
#   make aws-up        terraform init + apply (prints the URLs and the SSH command)
#   make aws-validate  wait for the host's bootstrap, then `rtap validate` against it (through an SSH tunnel)
#   make aws-down      terraform destroy
#   make aws-e2e       all three; destroys at the end even when a step fails or is interrupted
#
# Defaults come from this clone and this machine; override any of them on the command line
# (`make aws-up AWS_REGION=eu-central-1`) or put Terraform variables in deploy/terraform/terraform.tfvars,
# which wins over these (they are passed as TF_VAR_* environment variables).

AWS_TF_DIR := deploy/terraform
AWS_TF := terraform -chdir=$(AWS_TF_DIR)
# Your public address as a /32: the only source allowed to SSH and (by default) to open the UIs.
AWS_ADMIN_CIDR ?= $(shell curl -fsS --max-time 10 https://checkip.amazonaws.com)/32
# A new key pair from this public key, or AWS_KEY_NAME to adopt an existing one (never deleted), e.g. one
# created by hand in the EC2 console.
AWS_KEY_NAME ?=
AWS_PUBLIC_KEY ?= $(if $(AWS_KEY_NAME),,$(firstword $(wildcard $(HOME)/.ssh/id_ed25519.pub $(HOME)/.ssh/id_rsa.pub)))
# The private key aws-validate logs in with (to read the generated Metabase password). Empty: the one the
# deployment names (output ssh_private_key: the public key minus .pub, or ~/.ssh/<key name>.pem for an
# adopted key pair, the file the EC2 console downloads). Set at aws-up, it is recorded there too.
AWS_SSH_KEY ?=
# A fresh host may refuse a login for a few seconds, before cloud-init has installed the key; this many
# refusals in a row (AWS_SSH_RETRY_S apart) mean the key is wrong, and aws-validate stops instead of
# retrying until AWS_WAIT_S.
AWS_SSH_REFUSALS ?= 6
AWS_SSH_RETRY_S ?= 10
# The host clones this repository at exactly this commit: push it first.
AWS_REPO_URL ?= $(shell git config --get remote.origin.url | sed -E 's#^git@([^:]+):#https://\1/#')
AWS_REPO_REF ?= $(shell git rev-parse HEAD)
AWS_REGION ?=
AWS_TTL_HOURS ?=
# How long aws-validate waits for a fresh host (boot, Docker, image builds, first windows).
AWS_WAIT_S ?= 1500
AWS_VALIDATE_ARGS ?=
AWS_APPLY_ARGS ?= -auto-approve
# The .env variables on the host that hold Metabase's generated admin password and the dashboard's password.
AWS_METABASE_PASSWORD_VAR ?= RTAP_METABASE_ADMIN_PASSWORD
AWS_DASHBOARD_PASSWORD_VAR ?= RTAP_DASHBOARD_PASSWORD
# aws-validate reaches the dashboard and Metabase through an SSH tunnel to the host's loopback, from these ports
# of this machine's loopback: the passwords it logs in with never cross the internet in plain HTTP.
AWS_TUNNEL_DASHBOARD_PORT ?= 18050
AWS_TUNNEL_METABASE_PORT ?= 13000
# Without publish_collector the collector too is reached through the tunnel, from this port.
AWS_TUNNEL_COLLECTOR_PORT ?= 18070

# Only non-empty values are passed, so terraform.tfvars and the variables' defaults stay in charge otherwise.
aws_tf_env = $(strip \
  $(if $(AWS_ADMIN_CIDR),TF_VAR_admin_cidr='$(AWS_ADMIN_CIDR)') \
  $(if $(AWS_KEY_NAME),TF_VAR_existing_key_name='$(AWS_KEY_NAME)') \
  $(if $(AWS_PUBLIC_KEY),TF_VAR_public_key_path='$(AWS_PUBLIC_KEY)') \
  $(if $(AWS_SSH_KEY),TF_VAR_ssh_private_key_path='$(AWS_SSH_KEY)') \
  $(if $(AWS_REPO_URL),TF_VAR_repo_url='$(AWS_REPO_URL)') \
  $(if $(AWS_REPO_REF),TF_VAR_repo_ref='$(AWS_REPO_REF)') \
  $(if $(AWS_REGION),TF_VAR_region='$(AWS_REGION)') \
  $(if $(AWS_TTL_HOURS),TF_VAR_ttl_hours='$(AWS_TTL_HOURS)'))
# Sub-makes run the top-level makefile (the one that included this file).
aws_make = $(MAKE) -f $(firstword $(MAKEFILE_LIST)) --no-print-directory
# Used inside aws-validate's recipe, where $key holds the private key. Only that key is offered (an agent
# with many keys would otherwise hit the server's limit on attempts before it).
aws_ssh = ssh -i "$$key" -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=10 \
  -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=$(AWS_TF_DIR)/.known_hosts
# Resources that an `import` block in deploy/terraform brought under Terraform (made by hand, docs/aws.md):
# the `to` address of each import block, as `terraform fmt` writes them. aws-down keeps them standing.
aws_tf_files = $(wildcard $(AWS_TF_DIR)/*.tf)
aws_imported = $(if $(aws_tf_files),$(shell awk '/^import[[:space:]]*[{]/ {inside = 1; next} inside && /^[}]/ {inside = 0} \
  inside && $$1 == "to" && $$2 == "=" {print $$3}' $(aws_tf_files)))

.PHONY: aws-check aws-plan aws-up aws-validate aws-down aws-e2e

aws-check:
	@command -v terraform >/dev/null || { echo "error: terraform >= 1.11 is required (https://developer.hashicorp.com/terraform/install)"; exit 1; }
	@if command -v aws >/dev/null; then aws sts get-caller-identity --query Arn --output text >/dev/null || \
	  { echo "error: no AWS credentials: run 'aws configure' or 'aws sso login', or set AWS_PROFILE"; exit 1; }; fi
	@[[ "$(AWS_ADMIN_CIDR)" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+/[0-9]+$$ ]] || \
	  { echo "error: could not work out your address (got '$(AWS_ADMIN_CIDR)'): set AWS_ADMIN_CIDR=x.x.x.x/32"; exit 1; }
	@[ -n "$(AWS_REPO_URL)" ] || { echo "error: no git remote 'origin': set AWS_REPO_URL=https://.../rtap.git"; exit 1; }
	@if [[ "$(AWS_REPO_REF)" =~ ^[0-9a-f]{40}$$ ]] && [ -z "$$(git branch -r --contains $(AWS_REPO_REF) 2>/dev/null)" ]; then \
	  echo "error: commit $(AWS_REPO_REF) is on no remote branch, so the host cannot fetch it: push it or set AWS_REPO_REF"; exit 1; fi
	@[ -z "$$(git status --porcelain --untracked-files=no)" ] || \
	  echo "warning: uncommitted changes are not deployed; the host runs $(AWS_REPO_REF)"

aws-plan: aws-check ## AWS: show what aws-up would change (terraform init + plan), e.g. after adding an import block
	$(AWS_TF) init -input=false
	$(aws_tf_env) $(AWS_TF) plan -input=false

aws-up: aws-check ## AWS: create the network and the host, start the stack (terraform init + apply)
	$(AWS_TF) init -input=false
	$(aws_tf_env) $(AWS_TF) apply -input=false $(AWS_APPLY_ARGS)

aws-validate: $(BIN)/rtap ## AWS: wait for the host, then check it end to end with rtap validate
	@ip=$$($(AWS_TF) output -raw public_ip) || { echo "error: nothing deployed (run make aws-up)"; exit 1; }; \
	key='$(AWS_SSH_KEY)'; [ -n "$$key" ] || key=$$($(AWS_TF) output -raw ssh_private_key) || \
	  { echo "error: the deployment names no private key (made by an older rtap?): set AWS_SSH_KEY=path/to/key"; exit 1; }; \
	[ -r "$$key" ] || { echo "error: no private key at $$key for key pair $$($(AWS_TF) output -raw key_name 2>/dev/null): \
	set AWS_SSH_KEY=path/to/it (an adopted key pair's .pem from the EC2 console)"; exit 1; }; \
	echo "waiting for the host's bootstrap (cloud-init) on $$ip, logging in with $$key ..."; \
	deadline=$$(( $$(date +%s) + $(AWS_WAIT_S) )); refusals=0; \
	until answer=$$($(aws_ssh) ubuntu@$$ip true 2>&1); do \
	  case "$$answer" in *"Permission denied"*) refusals=$$((refusals + 1)) ;; *) refusals=0 ;; esac; \
	  [ $$refusals -lt $(AWS_SSH_REFUSALS) ] || { echo "error: $$ip refuses the key $$key $$refusals times in a row \
	(is it the private key of key pair $$($(AWS_TF) output -raw key_name 2>/dev/null)?): $$(echo "$$answer" | tail -n 1)"; exit 1; }; \
	  [ $$(date +%s) -lt $$deadline ] || { echo "error: no SSH on $$ip within $(AWS_WAIT_S) s: $$(echo "$$answer" | tail -n 1)"; exit 1; }; \
	  sleep $(AWS_SSH_RETRY_S); done; \
	$(aws_ssh) ubuntu@$$ip 'cloud-init status --wait >/dev/null; cloud-init status --long' || \
	  { echo "error: the bootstrap failed; its log:"; $(aws_ssh) ubuntu@$$ip 'sudo tail -n 40 /var/log/rtap-bootstrap.log'; exit 1; }; \
	password=$$($(aws_ssh) ubuntu@$$ip "sudo sed -n 's/^$(AWS_METABASE_PASSWORD_VAR)=//p' /opt/rtap/deploy/compose/.env"); \
	dashboard_password=$$($(aws_ssh) ubuntu@$$ip "sudo sed -n 's/^$(AWS_DASHBOARD_PASSWORD_VAR)=//p' /opt/rtap/deploy/compose/.env"); \
	write_keys=$$($(aws_ssh) ubuntu@$$ip "sudo sed -n 's/^RTAP_COLLECT_WRITE_KEYS=//p' /opt/rtap/deploy/compose/.env"); \
	collector=$$($(AWS_TF) output -raw collector_url) || \
	  { echo "error: the deployment has no collector_url output (made by an older rtap?): run make aws-up"; exit 1; }; \
	ca=""; \
	case "$$collector" in \
	  http://127.0.0.1:*) collector=http://127.0.0.1:$(AWS_TUNNEL_COLLECTOR_PORT) ;; \
	  https://[0-9]*) ca=$$(mktemp "$${TMPDIR:-/tmp}/rtap-collector-ca.XXXXXX"); \
	    $(aws_ssh) ubuntu@$$ip "cd /opt/rtap/deploy/compose && sudo docker compose exec -T tls cat /data/caddy/pki/authorities/local/root.crt" >"$$ca" || \
	    { echo "error: could not read the collector's local CA from $$ip (is its tls service running?)"; exit 1; } ;; \
	esac; \
	control=$$(mktemp -u "$${TMPDIR:-/tmp}/rtap-aws-tunnel.XXXXXX"); \
	$(aws_ssh) -f -N -M -S "$$control" -o ExitOnForwardFailure=yes \
	  -L 127.0.0.1:$(AWS_TUNNEL_DASHBOARD_PORT):127.0.0.1:8050 -L 127.0.0.1:$(AWS_TUNNEL_METABASE_PORT):127.0.0.1:3000 \
	  -L 127.0.0.1:$(AWS_TUNNEL_COLLECTOR_PORT):127.0.0.1:8070 \
	  ubuntu@$$ip || { echo "error: no SSH tunnel to $$ip (are local ports $(AWS_TUNNEL_DASHBOARD_PORT), \
	$(AWS_TUNNEL_METABASE_PORT) and $(AWS_TUNNEL_COLLECTOR_PORT) free? set AWS_TUNNEL_*_PORT)"; exit 1; }; \
	trap '$(aws_ssh) -S "'"$$control"'" -O exit ubuntu@'"$$ip"' >/dev/null 2>&1' EXIT; \
	remaining=$$(( deadline - $$(date +%s) )); [ $$remaining -gt 60 ] || remaining=60; \
	RTAP_METABASE_ADMIN_PASSWORD="$$password" RTAP_DASHBOARD_PASSWORD="$$dashboard_password" \
	RTAP_COLLECT_WRITE_KEYS="$$write_keys" $(BIN)/rtap validate \
	  --target http://127.0.0.1:$(AWS_TUNNEL_DASHBOARD_PORT) --metabase http://127.0.0.1:$(AWS_TUNNEL_METABASE_PORT) \
	  --collector "$$collector" $${ca:+--collector-ca "$$ca"} --wait-s $$remaining $(AWS_VALIDATE_ARGS)

aws-down: ## AWS: destroy everything aws-up created (an adopted key pair and imported resources stay)
	$(AWS_TF) init -input=false >/dev/null
	@for address in $(foreach address,$(aws_imported),'$(address)'); do \
	  listed=$$($(AWS_TF) state list "$$address") && { [ -z "$$listed" ] || $(AWS_TF) state rm "$$address" >/dev/null; } || \
	    { echo "error: could not take $$address out of the state, so nothing was destroyed (it would have been)"; exit 1; }; \
	  [ -z "$$listed" ] || echo "kept $$address (imported): removed from the state, not destroyed"; \
	done
	$(aws_tf_env) $(AWS_TF) destroy -input=false -auto-approve

aws-e2e: ## AWS: aws-up, aws-validate and aws-down; always destroys, even on failure or Ctrl-C
	@trap 'status=$$?; trap - EXIT INT TERM; echo "--- aws-e2e: destroying (exit status so far: $$status)"; \
	  $(aws_make) aws-down || { echo "error: destroy failed; run make aws-down again"; [ $$status -ne 0 ] || status=1; }; \
	  exit $$status' EXIT; \
	trap 'exit 130' INT TERM; \
	$(aws_make) aws-up AWS_APPLY_ARGS=-auto-approve && $(aws_make) aws-validate
