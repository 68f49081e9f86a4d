"""CloudFormation's vocabulary: stack statuses, operation types, and how DescribeEvents sorts
events into event types. Shared by the generated scenarios and the replay of recorded streams."""

from __future__ import annotations

UPDATABLE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE",
             "IMPORT_ROLLBACK_COMPLETE"}

# A nested stack entering one of these has failed, as far as its parent resource is concerned.
FAILURE_ENTRY = {"ROLLBACK_IN_PROGRESS", "CREATE_FAILED", "UPDATE_ROLLBACK_IN_PROGRESS", "UPDATE_FAILED",
                 "ROLLBACK_FAILED", "ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_FAILED", "UPDATE_ROLLBACK_COMPLETE",
                 "DELETE_FAILED"}

TERMINAL = {"CREATE_COMPLETE", "CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "UPDATE_COMPLETE",
            "UPDATE_FAILED", "UPDATE_ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_FAILED", "DELETE_COMPLETE",
            "DELETE_FAILED", "IMPORT_COMPLETE", "IMPORT_ROLLBACK_COMPLETE", "IMPORT_ROLLBACK_FAILED"}

# How an operation that ends in this stack status ended (DescribeEvents OperationStatus).
SUCCEEDED = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "DELETE_COMPLETE", "ROLLBACK_COMPLETE",
             "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE", "IMPORT_ROLLBACK_COMPLETE"}

# The stack-level status an operation starts with, and its OperationType (botocore's enum:
# CREATE_STACK UPDATE_STACK DELETE_STACK CONTINUE_ROLLBACK ROLLBACK CREATE_CHANGESET).
OPERATION_TYPE_BY_START = {
    "CREATE_IN_PROGRESS": "CREATE_STACK",
    "UPDATE_IN_PROGRESS": "UPDATE_STACK",
    "DELETE_IN_PROGRESS": "DELETE_STACK",
    "ROLLBACK_IN_PROGRESS": "ROLLBACK",
    "UPDATE_ROLLBACK_IN_PROGRESS": "ROLLBACK",
    "REVIEW_IN_PROGRESS": "CREATE_CHANGESET",
}

# Operations a user (or a pipeline) starts; rollbacks follow them.
USER_STARTS = {"CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "DELETE_IN_PROGRESS", "IMPORT_IN_PROGRESS"}

ROLLBACK_BY_USER = "Rollback requested by user."

ERROR_EVENT_TYPES = {"VALIDATION_ERROR", "PROVISIONING_ERROR", "HOOK_INVOCATION_ERROR"}

# A real DescribeEvents answer (tests/fixtures/real-events or simulator/README.md "Where each
# behaviour comes from") types progress events "PROGRESS", not the model's "PROGRESS_EVENT".
PROGRESS = "PROGRESS"


def event_type(status: str | None, hook_status: str | None = None) -> str:
    """The DescribeEvents EventType of a stack event."""
    if hook_status in ("HOOK_COMPLETE_FAILED", "HOOK_FAILED"):
        return "HOOK_INVOCATION_ERROR"
    if status and status.endswith("_FAILED"):
        return "PROVISIONING_ERROR"
    return PROGRESS


def operation_status(final_status: str | None) -> str:
    if final_status is None:
        return "IN_PROGRESS"
    return "SUCCEEDED" if final_status in SUCCEEDED else "FAILED"
