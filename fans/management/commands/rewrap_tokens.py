"""Re-wrap every stored token's data key under the current key-encryption key (the first of
TOKEN_ENCRYPTION_KEYS). Token ciphertexts are not touched; the old key can be removed afterwards."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from fans import vault
from fans.models import Credential


class Command(BaseCommand):
    help = "Re-wrap all stored fan tokens under the current key-encryption key."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--batch-size", type=int, default=500, help="Rows per transaction (default 500).")

    def handle(self, *args, batch_size: int, **options) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
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
