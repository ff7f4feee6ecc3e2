"""The cloud's tenant API as a technician key sees it (docs/api.md): locations, campaigns,
registering a device. The key comes from MCODE_TECHNICIAN_KEY or a file, never the command line
(shell history, ps) nor a URL (proxy logs): it goes in the Authorization header only."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tools.errors import BAD_INPUT, CLOUD, ToolError
from tools.i18n import _, zh

KEY_ENV = "MCODE_TECHNICIAN_KEY"
URL_ENV = "MCODE_CLOUD_URL"
DEFAULT_KEY_FILE = Path("~/.config/mcode/technician.key")


def technician_key(key_file: Path | None) -> str:
    key = os.environ.get(KEY_ENV, "").strip()
    if key:
        return key
    path = (key_file or DEFAULT_KEY_FILE).expanduser()
    try:
        key = path.read_text().strip()
    except OSError:
        key = ""
    if not key:
        raise ToolError(_("No technician key. Ask the merchant for one (merchant console: Keys, role "
                          "technician), then: export {env}=tk_...  or save it in {path} (chmod 600).")
                        .format(env=KEY_ENV, path=path), BAD_INPUT)
    return key


@dataclass
class Cloud:
    url: str
    key: str

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            r = httpx.request(method, self.url.rstrip("/") + path, json=body, timeout=30,
                              headers={"Authorization": f"Bearer {self.key}"})
        except httpx.HTTPError as e:
            raise ToolError(_("Cannot reach the cloud at {url}: {error}. Check the network and "
                              "--cloud.").format(url=self.url, error=e), CLOUD) from None
        if r.status_code in (401, 403):
            raise ToolError(_("The cloud refused the technician key ({status}). Ask the merchant for a "
                              "new one.").format(status=r.status_code), CLOUD)
        if r.status_code >= 400:
            try:
                err = r.json()
                msg = err.get("message_zh" if zh() else "message") or r.text
            except ValueError:
                msg = r.text
            raise ToolError(_("The cloud said no: {message}").format(message=msg), CLOUD)
        return r.json()

    def location(self, which: str) -> dict[str, Any]:
        """A location by id or by name."""
        locs = self._call("GET", "/locations")["locations"]
        for loc in locs:
            if str(loc["location_id"]) == which or loc["name"] == which:
                return dict(loc)
        names = ", ".join(f"{loc['location_id']} {loc['name']}" for loc in locs) or "-"
        raise ToolError(_("No location {which}. The locations are: {names}").format(
            which=which, names=names), BAD_INPUT)

    def campaign(self, which: str | None) -> dict[str, Any]:
        camps = [c for c in self._call("GET", "/campaigns")["campaigns"] if not c.get("released_at_ms")]
        if which is None and len(camps) == 1:
            return dict(camps[0])
        for c in camps:
            if str(c["campaign_id"]) == which or c["base_code"] == which:
                return dict(c)
        names = ", ".join(f"{c['campaign_id']} ({c['base_code']})" for c in camps) or "-"
        raise ToolError(_("Say which campaign with --campaign. The campaigns are: {names}").format(
            names=names), BAD_INPUT)

    def install(self, device_id: str, location_id: int) -> dict[str, Any]:
        """Mark the device installed at the location, now."""
        return dict(self._call("POST", f"/devices/{device_id}/install", {"location_id": location_id}))

    def register(self, campaign_id: int, location_id: int, board: str, label: str) -> dict[str, Any]:
        return dict(self._call("POST", "/devices", {"campaign_id": campaign_id, "location_id": location_id,
                                                    "board": board, "label": label}))

    def config(self, device_id: str) -> dict[str, Any]:
        """A registered device's flashing config with a new key (the cloud never shows a stored key):
        allowed only before the device is in use (409 device_in_service after)."""
        return dict(self._call("POST", f"/devices/{device_id}/key"))
