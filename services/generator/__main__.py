"""``python -m services.generator``: load the default model, then run jobs until SIGTERM."""

from __future__ import annotations

import asyncio

from services.common.runner import ServiceContext, run_service
from services.generator.pool import EnginePool
from services.generator.settings import GeneratorSettings
from services.generator.worker import Worker


async def main(ctx: ServiceContext) -> None:
    settings: GeneratorSettings = ctx.settings
    pool = EnginePool(settings)
    ctx.details.update(model=settings.model, engine=pool.engine_cls.name, status="loading")
    worker = Worker(settings, ctx.bus, pool, name=ctx.instance)
    # on the compute thread that will run the model: OpenMP's threads serve one calling thread at full speed
    executor = worker.executor if pool.engine_cls.compute_bound else None
    engine = await asyncio.get_running_loop().run_in_executor(executor, pool.get, None)  # a failure stops the worker
    ctx.details.update(model=engine.display_name, load_s=round(pool.load_times[settings.model], 3), status="ready")
    ctx.heartbeat.status = "ready"
    worker.details = ctx.details | worker.details
    ctx.details = worker.details
    # from now on the heartbeat says which models jobs may name (the gateway checks submits against it)
    ctx.heartbeat.details = lambda: {**worker.details, "model_policy": pool.policy().to_json()}
    try:
        await worker.run(ctx.stop)
    finally:
        pool.close()


if __name__ == "__main__":
    run_service("generator", GeneratorSettings, main)
