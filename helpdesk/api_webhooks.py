"""REST API over the merchant's webhook subscriptions and their delivery log: admin scope, and
a person whose role manages channels (owners and admins). Another merchant's id is 404."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from helpdesk import webhook_subscriptions as subscriptions
from helpdesk import webhooks
from helpdesk.errors import NotFound, valid
from helpdesk.models import ApiScope, WebhookDelivery, WebhookEvent, WebhookSubscription
from helpdesk.permissions import Capability, acting_agent_for_request, require


class SubscriptionSerializer(serializers.ModelSerializer):
    events = serializers.ListField(child=serializers.ChoiceField(choices=WebhookEvent.choices))

    class Meta:
        model = WebhookSubscription
        fields = ["id", "url", "events", "description", "is_active", "created_at", "updated_at"]


class NewSubscriptionSerializer(SubscriptionSerializer):
    """The subscription with its signing secret: shown when it is made or rotated."""

    class Meta(SubscriptionSerializer.Meta):
        fields = [*SubscriptionSerializer.Meta.fields, "secret"]


class SubscriptionInputSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=subscriptions.MAX_URL_CHARS)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookEvent.choices), min_length=1
    )
    description = serializers.CharField(
        max_length=200, required=False, default="", allow_blank=True
    )


class SubscriptionChangeSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=subscriptions.MAX_URL_CHARS, required=False)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookEvent.choices), min_length=1, required=False
    )
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    is_active = serializers.BooleanField(required=False)
    rotate_secret = serializers.BooleanField(required=False, default=False)


class DeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "url",
            "event",
            "state",
            "attempts",
            "last_status_code",
            "last_error",
            "next_attempt_at",
            "delivered_at",
            "created_at",
        ]


class AdminApi(generics.GenericAPIView):
    required_scope = ApiScope.ADMIN

    def subscription(self) -> WebhookSubscription:
        return subscriptions.access_subscription(
            acting_agent=acting_agent_for_request(self.request), pk=self.kwargs["pk"]
        )


class SubscriptionListApi(AdminApi, generics.ListAPIView):
    """GET: the merchant's webhook subscriptions. POST ``{"url", "events", "description"}``:
    subscribe (201, with the ``secret`` that signs the deliveries; shown this once)."""

    serializer_class = SubscriptionSerializer
    filter_backends: list[Any] = []

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return WebhookSubscription.objects.none()
        require(acting_agent_for_request(self.request), Capability.MANAGE_CHANNELS)
        return WebhookSubscription.objects.all()

    @extend_schema(request=SubscriptionInputSerializer, responses={201: NewSubscriptionSerializer})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = valid(SubscriptionInputSerializer, request)
        made = subscriptions.create_subscription(
            acting_agent=acting_agent_for_request(request), **data
        )
        return Response(NewSubscriptionSerializer(made).data, status=status.HTTP_201_CREATED)


class SubscriptionDetailApi(AdminApi):
    """GET: one subscription. PATCH: change it (``rotate_secret``: a new secret, returned).
    DELETE: unsubscribe (204; the delivery log stays)."""

    serializer_class = SubscriptionSerializer

    def get(self, request: Request, pk: int) -> Response:
        return Response(SubscriptionSerializer(self.subscription()).data)

    @extend_schema(request=SubscriptionChangeSerializer, responses={200: NewSubscriptionSerializer})
    def patch(self, request: Request, pk: int) -> Response:
        acting = acting_agent_for_request(request)
        subscription = self.subscription()
        data = valid(SubscriptionChangeSerializer, request)
        rotate = data.pop("rotate_secret", False)
        if data:
            subscription = subscriptions.change_subscription(
                acting_agent=acting, subscription=subscription, **data
            )
        if rotate:
            subscription = subscriptions.rotate_secret(
                acting_agent=acting, subscription=subscription
            )
            return Response(NewSubscriptionSerializer(subscription).data)
        return Response(SubscriptionSerializer(subscription).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        subscriptions.delete_subscription(
            acting_agent=acting_agent_for_request(request), subscription=self.subscription()
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class SubscriptionDeliveriesApi(AdminApi, generics.ListAPIView):
    """GET: the subscription's deliveries, newest first, with how each went."""

    serializer_class = DeliverySerializer
    filter_backends: list[Any] = []

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return WebhookDelivery.objects.none()
        subscription = self.subscription()
        return WebhookDelivery.objects.filter(subscription_links__subscription=subscription).defer(
            "body", "last_response", "attempt_log"
        )


class DeliveryResendApi(AdminApi):
    """POST: send a delivery again, the same bytes under the same delivery id (202)."""

    serializer_class = DeliverySerializer

    @extend_schema(request=None, responses={202: DeliverySerializer})
    def post(self, request: Request, pk: int) -> Response:
        acting = acting_agent_for_request(request)
        require(acting, Capability.MANAGE_CHANNELS)
        delivery = WebhookDelivery.objects.filter(pk=pk).first()
        if delivery is None:
            raise NotFound("No such webhook delivery")
        delivery = webhooks.resend(acting_agent=acting, delivery=delivery)
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
