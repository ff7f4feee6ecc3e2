"""Path, query and cookie parameters that several routes share."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Cookie, Path, Query

from cloud.http.inputs import HEX_ID, checked
from cloud.http.schemas import I32_MAX
from cloud.services.codes import VISITOR_COOKIE

# base code, dash, display suffix or 6-digit share code, or digits only (split by the rented base
# codes, or a bare base code); codes.read_code enforces it, and also reads the spellings phones type
# (full-width digits, other dashes, spaces: docs/protocol.md), refusing anything longer than 40
# characters before any lookup
CODE_PATTERN = "^[0-9]{1,12}(-[0-9]{1,6})?$"

GatewayIdQuery = Annotated[str | None, Query(description="admin keys only: the gateway",
                                             json_schema_extra=checked(pattern=HEX_ID))]
AdminTenant = Annotated[int | None, Query(ge=1, le=I32_MAX, description="the tenant, for admin keys only")]
CodePath = Annotated[str, Path(description="BASE-SUFFIX (4919-27), the same without the dash (491927), "
                                          "or a bare base code (4919)",
                              json_schema_extra=checked(pattern=CODE_PATTERN))]
VisitorCookie = Annotated[str | None, Cookie(alias=VISITOR_COOKIE, description="the shopper's visitor token, "
                                             "as the server signed it, if they have one")]


def id_path(what: str) -> Any:
    return Path(ge=1, le=I32_MAX, description=f"the {what}'s id")
