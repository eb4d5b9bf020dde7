from __future__ import annotations

app_name = "channels_in"

urlpatterns: list = []
