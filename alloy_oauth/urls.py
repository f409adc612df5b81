from django.urls import path

from . import key_entry, views

app_name = "alloy_oauth"

urlpatterns = [
    path("callback/", views.callback, name="callback"),
    path("connections/", views.connections, name="connections"),
    path("connections/status/", views.connections_status, name="connections_status"),
    path("<slug:slug>/authorize/", views.authorize, name="authorize"),
    path("<slug:slug>/enter/", key_entry.enter_secret, name="enter_secret"),
    path("<slug:slug>/connected/", views.connected, name="connected"),
    path("<slug:slug>/disconnect/", views.disconnect, name="disconnect"),
]
