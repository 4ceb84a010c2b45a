"""The exceptions NuMap raises or returns in place of a result.

Every input item yields exactly one result or one error. When the error is
not raised by the user's function itself, it is one of these, named for what
broke, so that a caller can tell a bug in their function from a lost worker.
"""


class NuMapError(Exception):
    """Base class of every error that NuMap itself produces."""


class WorkerLostError(NuMapError):
    """A worker died (killed, crashed, ``os._exit``) while it held the item.

    The worker is replaced and the stream goes on; only the items that the
    lost worker held carry this error.
    """


class HostLostError(WorkerLostError):
    """A remote host dropped its connection while it held the item."""


class HostUnreachableError(NuMapError, ConnectionError):
    """A remote host could not be reached when the NuMap started."""


class SerializationError(NuMapError):
    """A function, argument or result could not be pickled or unpickled.

    Only the item whose data failed carries this error.
    """


class RemoteError(NuMapError):
    """An exception raised in a worker that could not be sent back as itself.

    Its message holds the original type, message and traceback text.
    """
