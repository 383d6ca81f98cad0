"""Python SDK and command-line client (``mlsvc``) for the ML Service control API.

``Client`` is the SDK (see ``mlservice_client.client``); its errors are in ``mlservice_client.errors``;
``mlsvc --help`` lists the CLI's commands (``mlservice_client.cli``).
"""

from .client import Client
from .errors import (
    ApiError,
    AuthenticationError,
    ClientError,
    FileReadError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServiceUnavailableError,
    TransportError,
)
from .results import Classification, ItemResult, Prediction
from .transport import RetryPolicy

__all__ = [
    "ApiError",
    "AuthenticationError",
    "Classification",
    "Client",
    "ClientError",
    "FileReadError",
    "InvalidRequestError",
    "ItemResult",
    "NotFoundError",
    "PermissionDeniedError",
    "Prediction",
    "RateLimitedError",
    "RetryPolicy",
    "ServiceUnavailableError",
    "TransportError",
]
