"""Template tags of the staff console: the dashboard on the admin index."""

from django import template

from releases.dashboard import dashboard

register = template.Library()


@register.inclusion_tag("admin/releases/dashboard.html", takes_context=True)
def console_dashboard(context) -> dict:
    user = context["request"].user
    if not user.has_perm("releases.view_campaign"):
        return {"visible": False}
    return {"visible": True, **dashboard()}
