"""The client tests use the gateway's fixtures."""

from tests.gateway.conftest import gw_settings

__all__ = ["gw_settings"]
