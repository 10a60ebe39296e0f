# Cost guard, outside the host. The host also shuts itself down after ttl_hours (see the user_data
# template), but a host that has run out of memory may never run its own timer; this schedule asks
# EC2 to stop or terminate the instance regardless. The deadline is fixed when the instance is
# created (time_offset is replaced with the instance), so later plans do not move it.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

resource "time_offset" "ttl" {
  count = var.ttl_hours > 0 ? 1 : 0

  offset_hours = var.ttl_hours
  triggers = {
    instance_id = aws_instance.host.id
  }
}

data "aws_iam_policy_document" "scheduler_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

data "aws_iam_policy_document" "ttl_action" {
  statement {
    actions   = [var.ttl_action == "terminate" ? "ec2:TerminateInstances" : "ec2:StopInstances"]
    resources = [aws_instance.host.arn]
  }
}

resource "aws_iam_role" "ttl" {
  count = var.ttl_hours > 0 ? 1 : 0

  name_prefix        = "${var.name}-ttl-"
  description        = "Lets EventBridge Scheduler ${var.ttl_action} the rtap host when its TTL expires"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume.json
}

resource "aws_iam_role_policy" "ttl" {
  count = var.ttl_hours > 0 ? 1 : 0

  name   = "ttl-${var.ttl_action}"
  role   = aws_iam_role.ttl[0].id
  policy = data.aws_iam_policy_document.ttl_action.json
}

resource "aws_scheduler_schedule" "ttl" {
  #checkov:skip=CKV_AWS_297:The schedule's only input is the instance id, nothing confidential; an AWS-owned key is enough and a customer key would outlive the demo.
  count = var.ttl_hours > 0 ? 1 : 0

  name_prefix                  = "${var.name}-ttl-"
  description                  = "${title(var.ttl_action)} the rtap host ${var.ttl_hours} h after it was created"
  schedule_expression          = "at(${formatdate("YYYY-MM-DD'T'hh:mm:ss", time_offset.ttl[0].rfc3339)})"
  schedule_expression_timezone = "UTC"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = "arn:${data.aws_partition.current.partition}:scheduler:::aws-sdk:ec2:${var.ttl_action == "terminate" ? "terminateInstances" : "stopInstances"}"
    role_arn = aws_iam_role.ttl[0].arn
    input    = jsonencode({ InstanceIds = [aws_instance.host.id] })

    retry_policy {
      maximum_retry_attempts       = 10
      maximum_event_age_in_seconds = 3600
    }
  }
}
