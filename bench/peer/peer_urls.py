"""URLs of the peer: django-helpdesk's own, under the namespace its templates and mails reverse."""

from django.urls import include, path

urlpatterns = [path("helpdesk/", include("helpdesk.urls", namespace="helpdesk"))]
