"""In-app browsers (the web views inside Instagram, TikTok, …) told apart by their user agent.

Fans arrive from social apps on a phone. Inside those apps' browsers a streaming service's sign-in often
fails or asks for a password the fan does not remember, so the campaign page explains, offers to open the
page in the phone's own browser, and offers an email instead. Detection is by the user-agent tokens each app
adds to the system web view's; an unknown app's Android web view ("; wv)") is reported as a generic one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

USER_AGENT_MAX = 1000  # longer user agents are cut before matching


@dataclass(frozen=True)
class InAppBrowser:
    key: str  # stored in FunnelEvent.in_app_browser (at most 20 characters)
    label: str  # "Instagram": "You're in Instagram's browser"
    os: str  # "android", "ios" or ""

    @property
    def is_android(self) -> bool:
        return self.os == "android"

    @property
    def is_ios(self) -> bool:
        return self.os == "ios"


# (key, label, tokens): the first app whose token appears in the user agent wins. Order matters where one
# app's user agent carries another's token (Instagram says FBAN/FBAV too, WeChat's MicroMessenger
# contains Messenger).
APPS: list[tuple[str, str, tuple[str, ...]]] = [
    ("instagram", "Instagram", ("Instagram",)),
    ("wechat", "WeChat", ("MicroMessenger",)),
    ("messenger", "Messenger", ("Messenger", "FB_IAB/MESSENGER")),
    ("facebook", "Facebook", ("FBAN/", "FBAV/", "FB_IAB", "FBIOS", "FB4A", "[FBAN")),
    ("tiktok", "TikTok", ("musical_ly", "TikTok", "BytedanceWebview", "trill_", "ByteLocale")),
    ("snapchat", "Snapchat", ("Snapchat",)),
    ("twitter", "X (Twitter)", ("TwitterAndroid", "Twitter for", "Twitter/")),
    ("linkedin", "LinkedIn", ("LinkedInApp",)),
    ("pinterest", "Pinterest", ("Pinterest",)),
    ("line", "LINE", (" Line/",)),
    ("threads", "Threads", ("Barcelona ",)),
    ("reddit", "Reddit", ("Reddit/",)),
    ("discord", "Discord", ("Discord/",)),
    ("telegram", "Telegram", ("Telegram",)),
]
LABELS = {key: label for key, label, _ in APPS} | {"webview": "this app"}


def os_of(user_agent: str) -> str:
    if "Android" in user_agent:
        return "android"
    if any(token in user_agent for token in ("iPhone", "iPad", "iPod")):
        return "ios"
    return ""


def detect(user_agent: str) -> InAppBrowser | None:
    """The in-app browser `user_agent` comes from, or None for an ordinary browser."""
    user_agent = user_agent[:USER_AGENT_MAX]
    system = os_of(user_agent)
    for key, label, tokens in APPS:
        if any(token in user_agent for token in tokens):
            return InAppBrowser(key, label, system)
    if system == "android" and "; wv)" in user_agent:
        return InAppBrowser("webview", LABELS["webview"], system)
    return None


def android_intent_url(url: str, query: Mapping[str, str] | None = None) -> str:
    """An intent:// link that asks Android to open the https `url` in the default browser, not the app, with
    `query` (the visit's cleaned UTM values: fans.tracking.utm_values) added to it, URL-encoded, so that what
    the fan does there is counted for the link they came by.

    developer.chrome.com/docs/android/intents: `intent://HOST/PATH#Intent;scheme=https;end`, and the extra
    `S.browser_fallback_url=<encoded full URL>`, where Chrome sends the fan when no app takes the intent (the
    same page, query included).
    """
    url = with_query(url, query)
    parts = urlsplit(url)
    rest = parts.netloc + parts.path + (f"?{parts.query}" if parts.query else "")
    return (
        f"intent://{rest}#Intent;scheme={parts.scheme or 'https'};action=android.intent.action.VIEW;"
        f"S.browser_fallback_url={quote(url, safe='')};end"
    )


def with_query(url: str, query: Mapping[str, str] | None = None) -> str:
    """`url` with `query` (the visit's cleaned UTM values: fans.tracking.utm_values) added, URL-encoded, in a
    fixed order: the links out of an in-app browser's help keep the link the fan came by."""
    if not query:
        return url
    return url + ("&" if urlsplit(url).query else "?") + urlencode(sorted(query.items()))
