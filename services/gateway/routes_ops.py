"""REST: health, Prometheus metrics and the dashboard's configuration (no API key needed)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from services.alerter import profile
from services.gateway.deps import GatewayDep
from services.gateway.models import Calibration, ConfigResponse, HealthResponse, Limits, Thresholds

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
    await gw.metrics.refresh_lag(gw.redis, gw.settings)
    return Response(gw.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


@router.get("/config", response_model=ConfigResponse)
async def config(gw: GatewayDep) -> ConfigResponse:
    """What the dashboard needs to know before it starts."""
    s = gw.settings
    models = s.split(s.models) or [s.default_model]
    return ConfigResponse(
        models=models,
        default_model=s.default_model,
        thresholds=Thresholds(hbar_s=s.hbar_threshold, prob=s.prob_threshold),
        limits=Limits(max_tokens=s.max_tokens_limit, prompt_chars=s.max_prompt_chars, push_batch=s.push_max_batch),
        auth_required=s.auth_required,
        calibration={m: calibration_of(m, s.profiles_dir) for m in models},
    )


def calibration_of(model: str, profiles_dir: str) -> Calibration:
    prof = profile.for_model(model, profiles_dir)
    if prof is None:
        return Calibration(calibrated=False, profile=None, p_wrong=False, risk_rates={})
    return Calibration(calibrated=True, profile=prof.id, p_wrong=prof.p_wrong is not None, risk_rates=prof.risk_rates)
