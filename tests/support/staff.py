"""Staff users with some of the app's admin permissions, for the admin's permission tests."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Permission
from django.test import Client


def staff_client(django_user_model: Any, *actions: str) -> Client:
    """A staff user with ``actions`` (view, change, …) on every model of the app."""
    staff = django_user_model.objects.create_user(f"staff-{'-'.join(actions)}", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(
        content_type__app_label="alloy_oauth", codename__regex=rf"^({'|'.join(actions)})_"))
    client = Client()
    client.force_login(staff)
    return client
