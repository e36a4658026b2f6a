"""What every cloud (HTTP) provider shares, one module per concern.

- `client`: connection options (timeouts, proxy incl. SOCKS5, CA bundle, mTLS), the pooled
  client, sending a request;
- `errors`: `HttpFailure`, vendors' error bodies, masking secrets, the `check` line of a missing one;
- `retries`: retrying an attempt only before its first item;
- `provider`: `HttpProvider`, the mixin of a cloud provider class (its client, errors, retries);
- `sse`: server-sent events (text/event-stream) parsing.

The names providers use are re-exported here (`cloud_http.send`, `cloud_http.HttpOptions`, …).
"""

from voiceplat.providers.cloud_http.client import (
    RETRYABLE_ERRORS,
    ClientHolder,
    HttpOptions,
    make_client,
    option_secrets,
    options_problems,
    proxy_url,
    read_body,
    read_limited,
    send,
    tls_verify,
)
from voiceplat.providers.cloud_http.errors import (
    ENV_FILES,
    ERROR_TEXT_LIMIT,
    MASK,
    HttpFailure,
    error_message,
    mask,
    message_of,
    missing_env,
)
from voiceplat.providers.cloud_http.retries import backoff_delays, retrying_call, retrying_stream

__all__ = [
    "ENV_FILES",
    "ERROR_TEXT_LIMIT",
    "MASK",
    "RETRYABLE_ERRORS",
    "ClientHolder",
    "HttpFailure",
    "HttpOptions",
    "backoff_delays",
    "error_message",
    "make_client",
    "mask",
    "message_of",
    "missing_env",
    "option_secrets",
    "options_problems",
    "proxy_url",
    "read_body",
    "read_limited",
    "retrying_call",
    "retrying_stream",
    "send",
    "tls_verify",
]
