"""Devices: registering displays. A device's key is shown once, in the answer that registers it
(or gives an unused one a new key); no endpoint reads a stored key. Another tenant's object
answers 404, like one that does not exist, and ids are drawn by the cloud, so registering never
tells whether an id exists."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cloud.http import schemas as o
from cloud.http.deps import SF, Now, Techish
from cloud.http.inputs import DeviceIn, InstallIn
from cloud.http.params import AdminTenant
from cloud.http.schemas import KEYED, errors
from cloud.services import auth, provision

router = APIRouter()


@router.get("/devices", tags=["registry"], response_model=o.DeviceList, responses=errors(*KEYED))
def list_devices(sf: SF, p: Techish, merchant_id: AdminTenant = None) -> dict[str, Any]:
    return {"devices": provision.list_devices(sf, auth.tenant(p, merchant_id))}


@router.post("/devices", status_code=201, tags=["registry"], response_model=o.DeviceConfig,
             response_model_exclude_unset=True, responses=errors(*KEYED, 403, 404, 409))
def create_device(body: DeviceIn, sf: SF, p: Techish) -> dict[str, Any]:
    """Registers a device and returns its flashing config, device key included: the only time the
    key is shown. Printed codes (`printed`) need a merchant key."""
    return provision.create_device(sf, as_=p, **body.model_dump())


@router.get("/devices/{device_id}", tags=["registry"], response_model=o.DeviceOut,
            responses=errors(*KEYED, 404))
def get_device(device_id: str, sf: SF, p: Techish) -> dict[str, Any]:
    return provision.get_device(sf, p, device_id)


@router.post("/devices/{device_id}/key", tags=["registry"], response_model=o.DeviceConfig,
             response_model_exclude_unset=True, responses=errors(*KEYED, 404, 409))
def rekey_device(device_id: str, sf: SF, p: Techish) -> dict[str, Any]:
    """Provisions a registered device again with a new key (its flashing failed after registering)
    and returns its flashing config, the new key included. Only for a device not yet in use (no
    event, no entry) and registered within 24 hours: else 409 device_in_service."""
    return provision.rekey_device(sf, p, device_id)


@router.post("/devices/{device_id}/install", tags=["registry"], response_model=o.DeviceOut,
             responses=errors(*KEYED, 404))
def install_device(device_id: str, body: InstallIn, sf: SF, p: Techish, now: Now) -> dict[str, Any]:
    """Marks the device installed at one of the tenant's locations, now (the last step of `mcode
    tools provision`); installing again moves it."""
    return provision.install_device(sf, p, device_id, body.location_id, int(now() * 1000))
