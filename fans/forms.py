"""The forms a fan fills in by hand: the "email me when it's out" fallback, with explicit consent, and the
request for a fresh privacy link."""

from django import forms

from fans import addresses


class AddressField(forms.CharField):
    """An email address a fan types, checked by fans.addresses' rules (the ones every other address meets)."""

    widget = forms.EmailInput
    default_validators = addresses.VALIDATORS

    def widget_attrs(self, widget: forms.Widget) -> dict[str, str]:
        return {**super().widget_attrs(widget), "maxlength": str(addresses.MAX_LENGTH)}


class EmailSignupForm(forms.Form):
    email = AddressField(label="Your email address")
    consent = forms.BooleanField(
        required=True, error_messages={"required": "Tick the box to agree, or we can't email you."}
    )

    def __init__(self, *args, consent_label: str = "", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["consent"].label = consent_label
        self.fields["email"].widget.attrs.update({"autocomplete": "email", "inputmode": "email"})


class PrivacyLinkForm(forms.Form):
    email = AddressField(label="Your email address")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["email"].widget.attrs.update({"autocomplete": "email", "inputmode": "email"})
