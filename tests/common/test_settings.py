from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.common.settings import CommonSettings


def test_env_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UQ_REDIS_URL", "redis://example:6380/2")
    monkeypatch.setenv("UQ_STREAM_PREFIX", "prod:")
    monkeypatch.setenv("UQ_BATCH_SIZE", "64")
    s = CommonSettings()
    assert (s.redis_url, s.stream_prefix, s.batch_size) == ("redis://example:6380/2", "prod:", 64)
    assert s.stream("tokens") == "prod:tokens"


def test_invalid_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UQ_BATCH_SIZE", "0")
    with pytest.raises(ValidationError, match="batch_size"):
        CommonSettings()
