"""A Web API request's parameters (ids, numbers, a JSON body), refused with Spotify's 400s, and the paging
object that answers `limit` and `offset`."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from delivery.sandbox.spotify.errors import ApiError


async def json_object(request: web.Request) -> dict:
    """The request's JSON object body; 400 as Spotify answers a body it can't read."""
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "Error parsing json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Error parsing json")
    return body


def split_ids(raw: str | None, name: str, limit: int) -> list[str]:
    values = [value for value in (raw or "").split(",") if value]
    if not values:
        raise ApiError(400, f"Missing required field: {name}")
    if len(values) > limit:
        raise ApiError(400, "Too many ids requested")
    return values


async def ids_param(request: web.Request, name: str, limit: int) -> list[str]:
    """Comma-separated ids from the query string, or a JSON body `{name: [...]}` when the query has none."""
    if name in request.query or not request.can_read_body:
        return split_ids(request.query.get(name), name, limit)
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "Error parsing json") from None
    values = body.get(name) if isinstance(body, dict) else None
    if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
        raise ApiError(400, f"Missing required field: {name}")
    return split_ids(",".join(values), name, limit)


def int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(query.get(name, default))
    except ValueError:
        raise ApiError(400, f"Invalid {name}") from None
    if not low <= value <= high:
        raise ApiError(400, f"Invalid {name}")
    return value


def paging(href: str, items: list, offset: int, limit: int, total: int) -> dict[str, object]:
    """A paging object of `items`, the page at `offset` of `total` at `href`.
    developer.spotify.com/documentation/web-api/concepts/api-calls#pagination"""

    def at(start: int) -> str:
        return f"{href}?offset={start}&limit={limit}"

    return {
        "href": at(offset),
        "items": items,
        "limit": limit,
        "next": at(offset + limit) if offset + limit < total else None,
        "offset": offset,
        "previous": at(max(0, offset - limit)) if offset else None,
        "total": total,
    }
