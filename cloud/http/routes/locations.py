"""Locations (M店): where displays are mounted.
Another tenant's object answers 404, like one that does not exist."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter

from cloud.http import schemas as o
from cloud.http.deps import SF, Merchantish, Techish
from cloud.http.inputs import LocationIn
from cloud.http.params import AdminTenant, id_path
from cloud.http.schemas import KEYED, errors
from cloud.services import auth, locations

router = APIRouter()


@router.get("/locations", tags=["registry"], response_model=o.LocationList, responses=errors(*KEYED))
def list_locations(sf: SF, p: Techish, merchant_id: AdminTenant = None) -> dict[str, Any]:
    return {"locations": locations.list_locations(sf, auth.tenant(p, merchant_id))}


@router.post("/locations", status_code=201, tags=["registry"], response_model=o.LocationOut,
             responses=errors(*KEYED, 404))
def create_location(body: LocationIn, sf: SF, p: Merchantish) -> dict[str, Any]:
    return locations.create_location(sf, auth.tenant(p, body.merchant_id), body.name, body.address)


@router.get("/locations/{location_id}", tags=["registry"], response_model=o.LocationOut,
            responses=errors(*KEYED, 404))
def get_location(location_id: Annotated[int, id_path("location")], sf: SF, p: Techish) -> dict[str, Any]:
    return locations.get_location(sf, p, location_id)
