from django.urls import path

from . import views

app_name = "alloy_oauth"

urlpatterns = [
    path("callback/", views.callback, name="callback"),
    path("<slug:slug>/authorize/", views.authorize, name="authorize"),
    path("<slug:slug>/connected/", views.connected, name="connected"),
]
