"""The JSON API channel's fixtures and the real Celery worker, for routing tests whose
conversations arrive through that channel."""

from tests.channels_in.conftest import real_worker  # noqa: F401
from tests.channels_in.test_json_api import acme_api, local_server, receiver  # noqa: F401
