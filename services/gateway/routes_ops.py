"""REST: health, Prometheus metrics and the dashboard's configuration (no API key needed)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from services.alerter import profile
from services.alerter.builtin import ThresholdPolicy, effective_threshold, threshold_policy
from services.alerter.settings import AlerterSettings
from services.common.health import read_heartbeats
from services.gateway.deps import GatewayDep
from services.gateway.models import Calibration, ConfigResponse, HealthResponse, Limits, Thresholds
from services.gateway.services import Gateway

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=HealthResponse, responses={503: {"model": HealthResponse}})
async def health(gw: GatewayDep) -> JSONResponse:
    """Redis and each service's heartbeat with its age; 503 naming what is missing."""
    report = await gw.health.check()
    return JSONResponse(report.model_dump(mode="json"), status_code=200 if report.status == "ok" else 503)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(gw: GatewayDep) -> Response:
    """Prometheus metrics, prefix `uq_`."""
    gw.metrics.sync_live(gw.live)
    gw.metrics.sync_limiter(gw.limiter)
    await gw.metrics.refresh_lag(gw.redis, gw.settings)
    return Response(gw.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


@router.get("/config", response_model=ConfigResponse)
async def config(gw: GatewayDep) -> ConfigResponse:
    """What the dashboard needs to know before it starts."""
    s = gw.settings
    models, default_model = await gw.jobs.models.offered()
    policy, source = await _threshold_policy(gw)
    calibration = {m: calibration_of(m, s.profiles_dir, policy, source) for m in models}
    default = calibration.get(default_model) or calibration_of(default_model, s.profiles_dir, policy, source)
    return ConfigResponse(
        models=models,
        default_model=default_model,
        thresholds=default.thresholds,
        limits=Limits(max_tokens=s.max_tokens_limit, prompt_chars=s.max_prompt_chars, push_batch=s.push_max_batch),
        auth_required=s.auth_required,
        calibration=calibration,
    )


async def _threshold_policy(gw: Gateway) -> tuple[ThresholdPolicy, Literal["alerter", "defaults"]]:
    """The running alerters' threshold settings (from their heartbeats), else the alerter's defaults."""
    try:
        beats = await read_heartbeats(gw.redis, gw.settings)
    except RedisError:
        beats = []
    for beat in beats:
        policy = (beat.get("details") or {}).get("thresholds") if beat.get("service") == "alerter" else None
        if isinstance(policy, dict) and {"hbar_s", "prob"} <= set(policy):
            return policy, "alerter"
    return threshold_policy(AlerterSettings.model_construct()), "defaults"


def calibration_of(
    model: str, profiles_dir: str, policy: ThresholdPolicy, source: Literal["alerter", "defaults"]
) -> Calibration:
    prof = profile.for_model(model, profiles_dir)
    thresholds = Thresholds(
        hbar_s=effective_threshold(policy, "hbar_s", model, profiles_dir),
        prob=effective_threshold(policy, "prob", model, profiles_dir),
        source=source,
    )
    if prof is None:
        return Calibration(calibrated=False, profile=None, p_wrong=False, risk_rates={}, thresholds=thresholds)
    return Calibration(
        calibrated=True,
        profile=prof.id,
        p_wrong=prof.p_wrong is not None,
        risk_rates=prof.risk_rates,
        thresholds=thresholds,
    )
