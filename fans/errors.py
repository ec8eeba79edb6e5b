"""What can go wrong in the fan flow, each with the words a fan reads and the HTTP status of the page."""

from __future__ import annotations


class FanFlowError(Exception):
    """A problem the fan sees on the problem page: a short `title`, a `message`, and the page's status.

    `retry_url`, when set, is where the fan can start again (the campaign page, unless `retry_words` name another).
    `is_error` is False where nothing went wrong for the fan to report: what they chose themselves, or the way
    things are (the pre-save closed, the release out or not out yet, the service's test mode): the page then names
    no error code.
    """

    status = 400
    title = "Something went wrong"
    is_error = True
    retry_words = "Back to the pre-save page"

    def __init__(
        self, message: str, *, retry_url: str = "", title: str = "", email_campaign=None, retry_words: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_url = retry_url
        if retry_words:
            self.retry_words = retry_words
        self.email_campaign = email_campaign  # a campaign whose "email me when it's out" the page offers instead
        if title:
            self.title = title


class NotFound(FanFlowError):
    status = 404
    title = "Page not found"


class SecurityCheckFailed(FanFlowError):
    """A form posted without its CSRF cookie or with an old token (settings.CSRF_FAILURE_VIEW)."""

    status = 403
    title = "The security check didn't match"


class MethodNotAllowed(FanFlowError):
    """A URL reached with a method it doesn't answer: most often a form's address opened again (a reload, a
    restored tab), which GETs what the form POSTed to. `allowed` goes in the Allow header."""

    status = 405
    title = "Nothing to show at this address"

    def __init__(self, message: str, *, allowed: list[str], **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.allowed = allowed


class TooManyRequests(FanFlowError):
    """Over a rate limit (settings.RATELIMIT_VIEW)."""

    status = 429
    title = "Too many tries"


class ConsentDenied(FanFlowError):
    """The fan said no on the service's own screen: their choice, not an error (the status is for machines)."""

    status = 403
    title = "You didn't give permission"
    is_error = False


class BadAuthorizationState(FanFlowError):
    """The callback's `state` is missing, unknown to this browser, already used or too old."""

    status = 400
    title = "This sign-in can't be finished"


class CodeRejected(FanFlowError):
    """The service refused the authorization code (invalid_grant): already used or expired."""

    status = 400
    title = "This sign-in link was already used"


class LinkExpired(FanFlowError):
    """A signed link (fans/links.py) older than its maximum age."""

    status = 410
    title = "This link has expired"


class BadLink(FanFlowError):
    """A signed link that is forged, damaged, or names what no longer exists."""

    status = 400
    title = "This link isn't valid"


class NotOutYet(FanFlowError):
    """A smart-link click where the release is not out yet (on a per-market campaign, in the fan's country). Not
    a 404: the link is right and will work at the fan's release time (a link checker must not call it broken).
    409: the click conflicts with the release's state for now, and waiting resolves it; never cached by default,
    as a 200 or a 404 may be. The fan did nothing wrong: the page names no error code."""

    status = 409
    title = "Not out yet"
    is_error = False


class CampaignClosed(FanFlowError):
    """The pre-save (or its email sign-up) has ended: the campaign's state, not the fan's error."""

    status = 410
    title = "This pre-save has closed"
    is_error = False


class OutNow(CampaignClosed):
    """A pre-save (its start or a sign-in coming back) after the release is out where the fan is: nothing is left
    to save, and the fan did nothing wrong. The page links to the smart link (the campaign page, now "Out now")."""

    title = "It's out now"
    retry_words = "Listen now"


class OpenInBrowser(FanFlowError):
    """A pre-save started in an app's own browser (Instagram, TikTok…) on a service whose sign-in can't work
    there: the campaign page shows no button for it, so only a hand-made form gets here. The page gives the
    campaign page's "open in your browser" help (`in_app`; on Android, `intent_url` opens the campaign page in
    the phone's browser). The fan did nothing wrong: the page names no error code."""

    status = 403
    title = "Open this page in your browser"
    is_error = False

    def __init__(self, message: str, *, in_app, intent_url: str = "", **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.in_app = in_app
        self.intent_url = intent_url


class AccountNotListed(FanFlowError):
    """The service lets the label's app serve only its registered test users, and the fan is not one: the label's
    setup, not the fan's error."""

    status = 403
    title = "This pre-save can't use your account yet"
    is_error = False


class ServiceUnavailable(FanFlowError):
    """The streaming service failed or did not answer: worth another try."""

    status = 502
    title = "We couldn't reach the service"


class ServiceBusy(ServiceUnavailable):
    """The service rate-limited us (429): many fans at once."""

    status = 503
    title = "The service is busy"
