"""Devices: registering displays and reading their flashing config.
Another tenant's object answers 404, like one that does not exist."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cloud.http import schemas as o
from cloud.http.deps import SF, Techish
from cloud.http.inputs import DeviceIn
from cloud.http.params import AdminTenant
from cloud.http.schemas import KEYED, errors
from cloud.services import auth, provision

router = APIRouter()


@router.get("/devices", tags=["registry"], response_model=o.DeviceList, responses=errors(*KEYED))
def list_devices(sf: SF, p: Techish, merchant_id: AdminTenant = None) -> dict[str, Any]:
    return {"devices": provision.list_devices(sf, auth.tenant(p, merchant_id))}


@router.post("/devices", status_code=201, tags=["registry"], response_model=o.DeviceConfig,
             response_model_exclude_unset=True, responses=errors(*KEYED, 404, 409))
def create_device(body: DeviceIn, sf: SF, p: Techish) -> dict[str, Any]:
    """Registers a device and returns its flashing config, device key included."""
    return provision.create_device(sf, as_=p, **body.model_dump())


@router.get("/devices/{device_id}", tags=["registry"], response_model=o.DeviceOut,
            responses=errors(*KEYED, 404))
def get_device(device_id: str, sf: SF, p: Techish) -> dict[str, Any]:
    return provision.get_device(sf, p, device_id)


@router.get("/devices/{device_id}/config", tags=["registry"], response_model=o.DeviceConfig,
            response_model_exclude_unset=True, responses=errors(*KEYED, 404))
def get_device_config(device_id: str, sf: SF, p: Techish) -> dict[str, Any]:
    """The flashing config with the device key: for the technician at the device."""
    return provision.get_device(sf, p, device_id, with_key=True)
