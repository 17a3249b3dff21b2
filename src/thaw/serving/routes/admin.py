"""Admin endpoints: retrain in the background, list model versions."""


from fastapi import APIRouter, HTTPException, status

from thaw.serving.auth import AdminAccess
from thaw.serving.config import ServeConfig
from thaw.serving.deps import RegistryDep
from thaw.serving.models import ModelVersion, TrainingBusyError
from thaw.serving.schemas import ModelVersionOut


def router(config: ServeConfig) -> APIRouter:
    """Routes under /admin."""
    api = APIRouter(prefix="/admin", tags=["admin"], dependencies=[AdminAccess])

    @api.post(
        "/train",
        response_model=ModelVersionOut,
        status_code=status.HTTP_202_ACCEPTED,
        summary="Retrain on the current store in the background; swapped in only if not worse",
        responses={409: {"description": "a training run is already in progress"}},
    )
    def train(registry: RegistryDep) -> ModelVersionOut:
        try:
            return _out(registry.start_training())
        except TrainingBusyError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc

    @api.get("/models", response_model=list[ModelVersionOut], summary="Model versions with their metrics")
    def models(registry: RegistryDep) -> list[ModelVersionOut]:
        return [_out(v) for v in registry.versions()]

    return api


def _out(version: ModelVersion) -> ModelVersionOut:
    return ModelVersionOut(
        version=version.version,
        status=version.status,  # type: ignore[arg-type]
        created_at=version.created_at,
        origin=version.origin,  # type: ignore[arg-type]
        path=version.path,
        metrics=version.metrics,
        detail=version.detail,
        progress=version.progress,
    )
