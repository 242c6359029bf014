"""`pai doctor dns`: can the primary be reached, and does it let our key read each zone?"""

from __future__ import annotations

from pai_core.errors import PaiError
from pai_core.spec import Check
from pai_dns.settings import DnsSettings

__all__ = ["checks"]


def checks(settings: DnsSettings) -> list[Check]:
    from pai_dns.server import build_service

    try:
        service = build_service(settings)
    except PaiError as exc:
        return [Check("backend", "warn", str(exc))]
    out = []
    for zone in settings.zones:
        try:
            records = service.backend.read_zone(zone.rstrip(".") + ".")
            out.append(
                Check(f"zone {zone}", "ok", f"AXFR with the TSIG key: {len(records)} RRsets")
            )
        except PaiError as exc:
            out.append(Check(f"zone {zone}", "fail", str(exc)))
    return out
