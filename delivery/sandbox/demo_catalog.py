"""The world the sandbox starts with (and returns to on reset): two artists, their releases, three fans.

Ids are fixed 22-character base62 strings like Spotify's, so the project's demo seed can reuse them.
"""

from __future__ import annotations

import datetime as dt

from delivery.sandbox.state import Album, Artist, SandboxState, Track

MARKETS = ["GB", "US", "DE", "FR", "SE", "JP", "BR"]

NOVA_LARK_ARTIST_ID = "IamEFR5SUDageXmVLBx0hq"
NOVA_LARK_ALBUM_ID = "x8F7Yg1UMthhX4Jyna6mJh"
NOVA_LARK_ALBUM_UPC = "5012345678900"  # EAN-13
NOVA_LARK_TRACK_1_ID = "oC7IZvCWqKTCmNVxpMQa0S"
NOVA_LARK_TRACK_1_ISRC = "GBSBX2600001"
NOVA_LARK_TRACK_2_ID = "yRJMhcYTRFF2mCifU8L0h0"
NOVA_LARK_TRACK_2_ISRC = "GBSBX2600002"

PAPER_TIDES_ARTIST_ID = "yhLJfnSkYulgQG4dKQllGE"
PAPER_TIDES_ALBUM_ID = "rcWIaxsraqQqkLeWjAJ6DJ"
PAPER_TIDES_ALBUM_UPC = "198004123457"  # UPC-A
PAPER_TIDES_TRACK_ID = "s7t33ky6TP4Z1lVzV52wbL"
PAPER_TIDES_TRACK_ISRC = "USSBX2600001"

USERS = [
    ("alice", "Alice", "GB"),
    ("bob", "Bob", "US"),
    ("chloe", "Chloe", "DE"),
]


def load(state: SandboxState) -> None:
    """Add the demo artists, releases and users to `state`."""
    state.add_artist(Artist(NOVA_LARK_ARTIST_ID, "Nova Lark", genres=["dream pop"]))
    state.add_artist(Artist(PAPER_TIDES_ARTIST_ID, "The Paper Tides", genres=["indie folk"]))
    state.add_album(
        Album(
            NOVA_LARK_ALBUM_ID,
            "Glass Harbour",
            upc=NOVA_LARK_ALBUM_UPC,
            artist_id=NOVA_LARK_ARTIST_ID,
            # Out since yesterday (UTC), so the demo delivers: Apple Music lists a later date as a pre-order.
            release_date=(dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat(),
            total_tracks=2,
            available_markets=list(MARKETS),
            label="Sandbox Records",
        )
    )
    state.add_album(
        Album(
            PAPER_TIDES_ALBUM_ID,
            "Folded Maps",
            upc=PAPER_TIDES_ALBUM_UPC,
            artist_id=PAPER_TIDES_ARTIST_ID,
            release_date="2026-11-20",
            total_tracks=1,
            available_markets=list(MARKETS),
            album_type="single",
            label="Sandbox Records",
        )
    )
    for track in (
        Track(
            NOVA_LARK_TRACK_1_ID,
            "Glass Harbour",
            isrc=NOVA_LARK_TRACK_1_ISRC,
            album_id=NOVA_LARK_ALBUM_ID,
            artist_id=NOVA_LARK_ARTIST_ID,
            available_markets=list(MARKETS),
            track_number=1,
            duration_ms=214_000,
        ),
        Track(
            NOVA_LARK_TRACK_2_ID,
            "Low Tide Lights",
            isrc=NOVA_LARK_TRACK_2_ISRC,
            album_id=NOVA_LARK_ALBUM_ID,
            artist_id=NOVA_LARK_ARTIST_ID,
            available_markets=list(MARKETS),
            track_number=2,
            duration_ms=187_000,
        ),
        Track(
            PAPER_TIDES_TRACK_ID,
            "Folded Maps",
            isrc=PAPER_TIDES_TRACK_ISRC,
            album_id=PAPER_TIDES_ALBUM_ID,
            artist_id=PAPER_TIDES_ARTIST_ID,
            available_markets=list(MARKETS),
            duration_ms=243_000,
        ),
    ):
        state.add_track(track)
    for user_id, display_name, country in USERS:
        state.add_user(user_id, display_name, country=country)
