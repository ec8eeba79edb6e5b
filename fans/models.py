"""Fans (one per service account), their subscriptions, what they consented to, and their tokens."""

from __future__ import annotations

import hashlib
import secrets

from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from delivery.services import service_choices
from fans import vault

# The library actions a pre-save takes on release day, in order (Service.actions): the entries of
# Subscription.done_calls that name a whole action.
LIBRARY_ACTIONS = ("save", "follow", "playlist")


class Fan(models.Model):
    service = models.CharField(max_length=20, choices=service_choices)
    service_user_id = models.CharField(max_length=200, help_text="The service's stable account id.")
    display_name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    email.register_lookup(Lower)  # email__lower=…: an address whatever its case, through fan_by_address
    country = models.CharField(max_length=2, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["service", "service_user_id"], name="one_fan_per_account")]
        # The accounts carrying an address, whatever its case: erasure by address, the privacy link's form.
        indexes = [models.Index(Lower("email"), name="fan_by_address")]

    def __str__(self) -> str:
        return self.display_name or self.service_user_id


class Subscription(models.Model):
    """A fan's pre-save of one campaign: the promise that is kept on release day."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"
        REVOKED = "revoked", "Revoked"

    # No index of their own: one_subscription_per_fan (fan, campaign) and subscription_due (campaign, …) lead
    # with them, and every index is one more write each time release day updates a subscription.
    fan = models.ForeignKey(Fan, on_delete=models.CASCADE, related_name="subscriptions", db_index=False)
    campaign = models.ForeignKey(
        "releases.Campaign", on_delete=models.CASCADE, related_name="subscriptions", db_index=False
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    market = models.CharField(
        max_length=2, blank=True, help_text="The fan's market: from the service profile, else seen at sign-up."
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    # No length limit: Spotify's playlist records one entry per 100 tracks added (an album of hundreds of tracks).
    done_calls = models.TextField(
        "library actions done",
        blank=True,
        default="",
        db_default="",  # rows written by COPY (the console's benchmark) or by hand get it too
        help_text='Library actions already done for this fan ("save follow"): a later try does only the rest.',
    )
    next_attempt_at = models.DateTimeField(null=True, blank=True, help_text="Retry no earlier than this.")
    lease_expires_at = models.DateTimeField(null=True, blank=True, help_text="A worker holds it until then.")
    leased_by = models.UUIDField(null=True, blank=True, editable=False)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["fan", "campaign"], name="one_subscription_per_fan")]
        indexes = [
            models.Index(fields=["campaign", "status", "next_attempt_at"], name="subscription_due"),
            # The delivery queue: a run claims a campaign's pending fans first come, first served, and walks
            # only those still pending (not past every fan already delivered, as the claims of a million-fan
            # campaign would otherwise do).
            models.Index(
                fields=["campaign", "created_at", "id"], name="subscription_queue", condition=models.Q(status="pending")
            ),
            # The console's pre-saves per day and last 24 hours (releases/analytics.py, releases/dashboard.py).
            models.Index(fields=["campaign", "created_at"], name="subscription_by_campaign_day"),
        ]

    def __str__(self) -> str:
        return f"{self.fan} → {self.campaign.slug} ({self.status})"

    def library_actions_done(self) -> list[str]:
        """The library actions release day did for this pre-save, by name ("save", "follow", "playlist"): what a
        fan can read of `done_calls`, without the marks a try keeps on its way to an action (Spotify's
        "playlist-made:" and the new playlist's id, "playlist:1" for an album's first hundred tracks)."""
        done = self.done_calls.split()
        return [action for action in LIBRARY_ACTIONS if action in done]

    def delivery_market(self) -> str:
        """The market the pre-save is delivered in: its campaign's reading of it and its fan's country
        (`Campaign.market_for`)."""
        return self.campaign.market_for(self.market, self.fan.country)


def country_without_market() -> models.Expression:
    """The fan's country for a pre-save without a market of its own, else "": what `Campaign.market_for` reads
    beside the market, for queries that count pre-saves by market. The fan is looked up only for those rows (a
    subquery by key), not joined for every pre-save."""
    country = Fan.objects.filter(pk=models.OuterRef("fan_id")).values("country")[:1]
    return models.Case(models.When(market="", then=models.Subquery(country)), default=models.Value(""))


def credential_aad(subscription_id: int) -> bytes:
    """The vault's associated data for a subscription's credential: its sealed token opens in this row only."""
    return f"fans.Credential:{subscription_id}".encode()


class Credential(models.Model):
    """The fan's refresh token for one subscription, sealed by the token vault (fans/vault.py).

    Bound to its subscription: the vault's associated data is the subscription id, so the ciphertext opens
    only in this row. One credential per subscription keeps two campaigns' token rotations independent.
    """

    subscription = models.OneToOneField(
        Subscription, on_delete=models.CASCADE, primary_key=True, related_name="credential"
    )
    kek_id = models.CharField(max_length=40)
    wrapped_key = models.BinaryField()
    ciphertext = models.BinaryField()
    authorized_at = models.DateTimeField(help_text="When the fan authorized; some services expire tokens from it.")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Credential of subscription {self.subscription_id} (key {self.kek_id})"

    @property
    def aad(self) -> bytes:
        return credential_aad(self.subscription_id)

    @property
    def sealed(self) -> vault.Sealed:
        return vault.Sealed(self.kek_id, bytes(self.wrapped_key), bytes(self.ciphertext))

    def store(self, token: str) -> None:
        """Seal `token` into this row (not saved)."""
        sealed = vault.seal(token, aad=self.aad)
        self.kek_id, self.wrapped_key, self.ciphertext = sealed.kek_id, sealed.wrapped_key, sealed.ciphertext

    def reveal(self) -> str:
        """The plaintext token. Only the delivery worker calls this."""
        return vault.unseal(self.sealed, aad=self.aad)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ConsentRecordQuerySet(models.QuerySet):
    # Opted in to email and not withdrawn: the consents whose address gets the release email, is exported and
    # counts as opted in. Only the fan withdraws it: their revoke link or privacy page (which stamp `revoked_at`
    # on every consent of the pre-save), the email's unsubscribe, erasure. Release day finding the authorization
    # gone (the token expired after six months, the app was disconnected in the service) ends the pre-save
    # revoked but is no answer to the email question: the "it's out" email is then the fan's only way to hear.
    SHARING_EMAIL = models.Q(email_opt_in=True, revoked_at__isnull=True)

    def sharing_email(self):
        return self.filter(self.SHARING_EMAIL)


class ConsentRecord(models.Model):
    """What a fan agreed to, when, and how: one row per authorization, never edited but for revocation."""

    subscription = models.ForeignKey(
        Subscription, on_delete=models.SET_NULL, null=True, blank=True, related_name="consents"
    )
    campaign = models.ForeignKey("releases.Campaign", on_delete=models.CASCADE, related_name="consents")
    service = models.CharField(max_length=20, choices=service_choices)
    service_user_id = models.CharField(max_length=200)
    display_name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    email.register_lookup(Lower)  # email__lower=…: an address whatever its case, through consent_by_address
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    scopes = models.JSONField(default=list)
    wording_version = models.CharField(max_length=40)
    email_opt_in = models.BooleanField(default=False)
    revoke_token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ConsentRecordQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        # An address's consents, whatever its case: the privacy pages opened by address, unsubscribing.
        indexes = [models.Index(Lower("email"), name="consent_by_address")]

    def __str__(self) -> str:
        return f"{self.display_name or self.service_user_id} on {self.created_at:%Y-%m-%d %H:%M}"

    def issue_revoke_token(self) -> str:
        """A new one-click revoke token; only its hash is stored, so show it now or never."""
        token = secrets.token_urlsafe(32)
        self.revoke_token_hash = hash_token(token)
        return token


class FunnelEvent(models.Model):
    """One step of a visitor's way through a campaign: page view, button click, authorization, smart-link click.

    Privacy by design: no IP address; `visitor` is a hash of a random cookie id with a salt that rotates daily
    (blank when the browser sends DNT or Sec-GPC). Erasing a fan nulls `subscription`, leaving an anonymous count.
    """

    class Kind(models.TextChoices):
        VIEW = "view", "Page view"
        CLICK = "click", "Button click"
        AUTHORIZE = "authorize", "Authorization"
        EMAIL_OPTIN = "email_optin", "Email opt-in"
        LISTEN_CLICK = "listen_click", "Smart-link click"

    campaign = models.ForeignKey(  # indexed by funnel_by_campaign, which leads with it
        "releases.Campaign", on_delete=models.CASCADE, related_name="funnel_events", db_index=False
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    service = models.CharField(max_length=20, blank=True, help_text="The service or platform clicked, if any.")
    visitor = models.CharField(max_length=64, blank=True, help_text="Daily-salted hash; never an IP address.")
    subscription = models.ForeignKey(
        Subscription, on_delete=models.SET_NULL, null=True, blank=True, related_name="funnel_events"
    )
    utm_source = models.CharField(max_length=100, blank=True)
    utm_medium = models.CharField(max_length=100, blank=True)
    utm_campaign = models.CharField(max_length=100, blank=True)
    referrer_domain = models.CharField(max_length=100, blank=True)
    country = models.CharField(max_length=2, blank=True)
    device = models.CharField(max_length=10, blank=True, help_text="mobile, tablet or desktop.")
    in_app_browser = models.CharField(max_length=20, blank=True, help_text="instagram, tiktok, … or blank.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["campaign", "kind", "created_at"], name="funnel_by_campaign"),
            # The tally trigger asks it whether a page view's visitor was seen before (a visitor a day: the
            # hash's salt changes daily); releases/migrations/0011.
            models.Index(
                fields=["campaign", "visitor"],
                name="funnel_visitor_days",
                condition=models.Q(kind="view") & ~models.Q(visitor=""),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.campaign_id} at {self.created_at:%Y-%m-%d %H:%M}"


class EmailSignupQuerySet(models.QuerySet):
    # Confirmed and not unsubscribed: the sign-ups that get the release email and appear in exports and counts.
    RECEIVING = models.Q(confirmed_at__isnull=False, unsubscribed_at__isnull=True)

    def receiving(self):
        return self.filter(self.RECEIVING)


class EmailSignup(models.Model):
    """A fan who asked only to be emailed when the release is out (no streaming account involved): the
    fallback in in-app browsers and for services not enabled. Fans who pre-saved and ticked the email box
    are found through their ConsentRecord (email_opt_in) instead: their address comes from the service.

    Double opt-in: anyone can type any address, so a sign-up counts (release email, exports, counts) only
    once its address has been confirmed by the link we mail to it (fans/signups.py).
    """

    campaign = models.ForeignKey("releases.Campaign", on_delete=models.CASCADE, related_name="email_signups")
    email = models.EmailField()
    # email__lower=lowered(address) (fans.addresses): an address whatever its case, through
    # one_signup_per_email's index, which holds lower(email) (iexact compares UPPER()s: a read of every sign-up).
    email.register_lookup(Lower)
    country = models.CharField(max_length=2, blank=True)
    wording_version = models.CharField(max_length=40, help_text="The consent wording the fan saw.")
    created_at = models.DateTimeField(default=timezone.now)
    confirmed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the address was confirmed by the link mailed to it."
    )
    unsubscribed_at = models.DateTimeField(null=True, blank=True)

    objects = EmailSignupQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        # Whatever its case: sign_up lower-cases the address, and finds the one a row written otherwise holds.
        constraints = [models.UniqueConstraint(Lower("email"), "campaign", name="one_signup_per_email")]

    def __str__(self) -> str:
        return f"{self.email} for {self.campaign_id}"


class ReleaseEmailQuerySet(models.QuerySet):
    # Still to send: not sent, not unsubscribed, not refused for good by the mail server.
    UNSENT = models.Q(sent_at__isnull=True, unsubscribed_at__isnull=True, refusal="")

    def unsent(self):
        return self.filter(self.UNSENT)


class ReleaseEmail(models.Model):
    """The release-day "it's out" email to one address for one campaign: sent once, then its opens, clicks and
    unsubscription. Links in the email carry this row's id, signed (fans/release_email.py)."""

    campaign = models.ForeignKey("releases.Campaign", on_delete=models.CASCADE, related_name="release_emails")
    email = models.EmailField()
    email.register_lookup(Lower)  # email__lower=…: an address whatever its case, one_release_email_whatever_the_case
    market = models.CharField(
        max_length=2,
        blank=True,
        help_text="Whose local release time the email waits for on a per-market campaign: the fan's market, "
        "else the country seen at sign-up (blank: the campaign's default market).",
    )
    consent = models.ForeignKey(
        ConsentRecord, on_delete=models.SET_NULL, null=True, blank=True, related_name="release_emails"
    )
    signup = models.ForeignKey(
        EmailSignup, on_delete=models.SET_NULL, null=True, blank=True, related_name="release_emails"
    )
    sent_at = models.DateTimeField(null=True, blank=True)
    refusal = models.CharField(
        max_length=200,
        blank=True,
        help_text="The mail server's permanent refusal of the address (a 5xx): it is not tried again.",
    )
    opened_at = models.DateTimeField(null=True, blank=True, help_text="First open (tracking pixel).")
    clicked_at = models.DateTimeField(null=True, blank=True, help_text="First click on a listening link.")
    clicks = models.PositiveIntegerField(default=0)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = ReleaseEmailQuerySet.as_manager()

    class Meta:
        # Whatever its case: planning, and "Stop the email", find an address's row in any case, and two runs
        # planning at once each write the address in its source's case (fans 0024 made case twins one). Its index
        # also finds when a consent's address was unsubscribed, whatever its case (fans.admin.WITHDRAWN_AT).
        constraints = [models.UniqueConstraint(Lower("email"), "campaign", name="one_release_email_whatever_the_case")]

    def __str__(self) -> str:
        return f"Release-day email to {self.email} for {self.campaign_id}"
