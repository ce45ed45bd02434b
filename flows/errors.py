"""What each known failure means to a caller: the CLI's exit codes (the README lists them),
and which failures are the input's fault rather than the platform's."""

from __future__ import annotations

# Exit codes a scheduler or script can branch on, by exception class name.
EXIT_CODES = {
    "ParamsError": 2,
    "UnknownAgencyError": 2,
    "UnknownUseCaseError": 2,
    "UnknownDatasetError": 2,
    "InputFileError": 3,
    "InputChangedError": 3,
    "DataValidationError": 4,
    "BatchRejectedError": 4,
    "BatchSchemaError": 4,
    "FeatureError": 4,
    "AmbiguousDatesError": 4,
    "SourceError": 4,
    "TrainingError": 5,
    "UntrainableTargetError": 5,
    "ModelNotFoundError": 6,
    "BatchNotFoundError": 6,
    "ReproductionError": 7,
    "CheckoutError": 7,
    "DvcError": 9,
    "DataIntegrityError": 9,
    "DamagedBatchError": 9,  # a published batch no longer matches its manifest
    "DamageFoundError": 9,  # `agencyml verify` found damage
    "RegistryError": 10,
    "AuditLogError": 11,
    "AliasMovedError": 11,  # the champion alias is not where the audit log last put it
    "LogTamperedError": 11,
    "LogAnchorError": 11,  # a chained log's head cannot be kept in or read from MLflow
    "AccessError": 2,
    "SampleError": 2,
    "ProfileError": 2,
    "PullError": 13,
    "OrchestrationError": 14,
    "InboxError": 14,
    "FlowRunTimeoutError": 14,  # Prefect's backstop, well after the run's own limit
    "TimeLimitError": 14,  # the run stopped itself past its use case's time limit
    "PrefectServerStartError": 14,
    "PipelineOutOfDateError": 14,  # dvc.yaml or prefect.yaml no longer matches params/
    "ProjectNotFoundError": 2,  # no params/ here or above: `agencyml init DIR` makes a project
    "SettingsError": 2,  # an AGENCYML_* variable holds a value agencyml cannot use
    "OutputDiskError": 16,  # the state directory's disk is full or cannot be written
    "OutputPathError": 2,  # an output option names a folder, or a place this user cannot write
    "TrackingServerError": 15,  # AGENCYML_TRACKING_URI's MLflow server does not answer
    "PrefectUnreachableError": 14,  # PREFECT_API_URL's server does not answer
}
INTERRUPTED = 130  # Ctrl-C (SIGINT), as shells report it
INPUT_CODES = (3, 4)  # the file cannot be read, or its data was rejected


def is_bad_input(error: BaseException) -> bool:
    """The batch itself is at fault (unreadable, rejected): another try gives the same."""
    return EXIT_CODES.get(type(error).__name__) in INPUT_CODES


def is_over_time_limit(error: BaseException) -> bool:
    """The run went past its use case's time limit (its own check, or Prefect's backstop)."""
    return type(error).__name__ in ("TimeLimitError", "FlowRunTimeoutError")


class PrefectServerStartError(RuntimeError):
    """Prefect's temporary local server did not answer in time (a busy machine, usually)."""


class TrackingServerError(RuntimeError):
    """The MLflow tracking server that AGENCYML_TRACKING_URI names does not answer."""


class PrefectUnreachableError(RuntimeError):
    """The Prefect server that PREFECT_API_URL names does not answer."""


EPHEMERAL_TIMEOUT = "Timed out while attempting to connect to ephemeral Prefect API server"
UNREACHABLE_API = "Failed to reach API at "


def explained(error: Exception) -> Exception:
    """A known failure of a library, as the platform's own error with what to do about it;
    any other error as it is."""
    if isinstance(error, RuntimeError) and str(error).startswith(EPHEMERAL_TIMEOUT):
        from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

        waited = PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()
        return PrefectServerStartError(
            f"Prefect's temporary local server did not start within {waited} s, so nothing ran. "
            "The machine may be busy: try again, allow it longer with "
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, or start a server once with "
            "`agencyml server` and point runs at it with "
            "PREFECT_API_URL=http://127.0.0.1:4200/api."
        )
    if isinstance(error, RuntimeError) and str(error).startswith(UNREACHABLE_API):
        url = str(error).removeprefix(UNREACHABLE_API)
        return PrefectUnreachableError(
            f"no Prefect server answers at {url} (PREFECT_API_URL), so nothing ran: start it, "
            "or unset PREFECT_API_URL to let agencyml start a local one, and try again."
        )
    return error
