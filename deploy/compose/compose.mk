# The Docker Compose stack (deploy/compose, docs/compose.md). Included by the Makefile; paths are
# relative to the repository root. `make compose-env` once, then
# `docker compose -f deploy/compose/compose.yaml up -d` is all it takes.
SHELL := /bin/bash

COMPOSE_DIR := deploy/compose
# Where the secrets go; tests point it at a temporary file.
COMPOSE_ENV ?= $(COMPOSE_DIR)/.env

.PHONY: compose-env

# The same rule as the AWS host's bootstrap (deploy/terraform/user_data.sh.tftpl): every variable whose
# name contains PASSWORD or SECRET gets 24 random bytes as hex, SPARK_UI_TOKEN the token of the
# RTAP_STREAM_UI_SECRET above it (HS256 with openssl: what rtap.stream.ui.token makes), every other line is
# copied. An existing file is kept: the volumes were initialised with its passwords.
compose-env: ## Write deploy/compose/.env from .env.example with fresh random secrets (kept if present)
	@if [ -e "$(COMPOSE_ENV)" ]; then \
	  echo "$(COMPOSE_ENV) exists: kept (to start over: docker compose ... down --volumes, then delete it)"; \
	else \
	  umask 077; \
	  b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }; \
	  while IFS= read -r line || [ -n "$$line" ]; do \
	    if [[ $$line =~ ^([A-Z0-9_]*(PASSWORD|SECRET)[A-Z0-9_]*)= ]]; then \
	      name=$${BASH_REMATCH[1]}; value=$$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n'); \
	      if [ "$$name" = RTAP_STREAM_UI_SECRET ]; then ui_secret=$$value; fi; \
	      printf '%s=%s\n' "$$name" "$$value"; \
	    elif [[ $$line =~ ^SPARK_UI_TOKEN= ]]; then \
	      signed=$$(printf %s '{"alg":"HS256","typ":"JWT"}' | b64url).$$(printf %s '{"sub":"rtap"}' | b64url); \
	      printf 'SPARK_UI_TOKEN=%s.%s\n' "$$signed" "$$(printf %s "$$signed" \
	        | openssl dgst -sha256 -hmac "$$ui_secret" -binary | b64url)"; \
	    else \
	      printf '%s\n' "$$line"; \
	    fi; \
	  done <"$(COMPOSE_DIR)/.env.example" >"$(COMPOSE_ENV).tmp" \
	  && mv "$(COMPOSE_ENV).tmp" "$(COMPOSE_ENV)" \
	  && echo "wrote $(COMPOSE_ENV) (mode 600); next: docker compose -f $(COMPOSE_DIR)/compose.yaml up -d"; \
	fi
