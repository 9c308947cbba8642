from tests.e2e.daemon_harness import daemons, notify_socket, slow_endpoint  # noqa: F401 - fixtures
