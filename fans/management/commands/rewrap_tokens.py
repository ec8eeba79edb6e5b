"""Re-wrap every stored token's data key under the current key-encryption key (the first of
TOKEN_ENCRYPTION_KEYS). Token ciphertexts are not touched.

A process still running with the old key first (a web server or worker not restarted since the new key was put
first) keeps sealing new tokens with it, after this has run: `--check` counts what is left under other keys,
so that the old key is removed only when nothing is (README: Security, Key rotation).
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Count

from fans import vault
from fans.models import Credential


class Command(BaseCommand):
    help = "Re-wrap all stored fan tokens under the current key-encryption key (--check: only count those left)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--batch-size", type=int, default=500, help="Rows per transaction (default 500).")
        parser.add_argument(
            "--check",
            action="store_true",
            help="Change nothing: count the tokens still sealed with other keys; exit status 1 if there are any.",
        )

    def handle(self, *args, batch_size: int, check: bool, **options) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        if check:
            self.check_left()
            return
        current_id, _ = vault.current_kek()
        rewrapped = failed = 0
        last_pk = 0
        while True:
            with transaction.atomic():
                batch = list(
                    Credential.objects.exclude(kek_id=current_id)
                    .filter(pk__gt=last_pk)
                    .order_by("pk")
                    .select_for_update()[:batch_size]
                )
                if not batch:
                    break
                last_pk = batch[-1].pk
                changed = []
                for credential in batch:
                    try:
                        sealed = vault.rewrap(credential.sealed, aad=credential.aad)
                    except vault.VaultError as exc:
                        failed += 1
                        self.stderr.write(f"subscription {credential.subscription_id}: {exc}")
                        continue
                    credential.kek_id, credential.wrapped_key = sealed.kek_id, sealed.wrapped_key
                    changed.append(credential)
                Credential.objects.bulk_update(changed, ["kek_id", "wrapped_key"])
                rewrapped += len(changed)
        self.stdout.write(f"Re-wrapped {rewrapped} token(s) under key {current_id!r}; {failed} could not be opened.")

    def check_left(self) -> None:
        current_id, _ = vault.current_kek()
        configured = {kid for kid, _ in vault.parse_keys(settings.TOKEN_ENCRYPTION_KEYS)}
        rows = Credential.objects.exclude(kek_id=current_id).values("kek_id").annotate(n=Count("pk"))
        left = {row["kek_id"]: row["n"] for row in rows.order_by("kek_id")}
        if not left:
            self.stdout.write(f"No token is sealed with an old key: all are under key {current_id!r}.")
            return
        keys = ", ".join(
            f"{kid!r}: {n}" + ("" if kid in configured else " (not in TOKEN_ENCRYPTION_KEYS)")
            for kid, n in left.items()
        )
        raise CommandError(
            f"{sum(left.values())} token(s) still sealed with old keys ({keys}). Run rewrap_tokens once every "
            "web and worker process runs with the new key first; keep the old keys until this finds none.",
            returncode=1,
        )
