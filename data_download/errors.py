"""The one exception type the command line turns into a clean message."""


class DataDownloadError(RuntimeError):
    """A failure the user can act on; the message says what happened and what to do."""


class AccessDenied(DataDownloadError):
    """The source refused us (HTTP 401/403): retrying will not help, registering might."""


class NotFound(DataDownloadError):
    """The source has no such file; the caller may try another candidate URL."""
