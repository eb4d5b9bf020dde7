"""Settings, all from the environment.

With no environment at all the app runs on an embedded default (SQLite file, in-memory channel
layer, Celery tasks run eagerly). With ``DATABASE_URL`` / ``REDIS_URL`` it runs on PostgreSQL,
channels-redis and a real Celery broker.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from helpdesk.env import env_bool, env_int, env_list, env_str, parse_database_url
from helpdesk.logging import init_sentry, logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off")
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "helpdesk.apps.PlatformAdminConfig",  # django.contrib.admin, for platform operators only
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "channels",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "helpdesk.apps.HelpdeskConfig",
    "tickets",
    "channels_in",
    "escalation",
]
# daphne only gives `runserver` an ASGI server (WebSockets in `make run`); production serves with
# gunicorn + uvicorn workers, so it is a development dependency and only loaded when present.
if DEBUG and importlib.util.find_spec("daphne") is not None:
    INSTALLED_APPS.insert(0, "daphne")

MIDDLEWARE = [
    "helpdesk.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Before the session: a NUL in the session cookie would otherwise reach its query.
    "helpdesk.middleware.RefuseUnstorableInputMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "helpdesk.sign_in.OperatorTotpRequiredMiddleware",
    "helpdesk.tenancy.TenantMiddleware",
    # After the tenant is known: a member's own language choice (helpdesk/middleware.py).
    "helpdesk.middleware.MemberLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "helpdesk.errors.HelpdeskErrorMiddleware",
    # Keeps the answer to an API write sent with an Idempotency-Key (helpdesk.idempotency).
    "helpdesk.idempotency.IdempotencyMiddleware",
]

ROOT_URLCONF = "helpdesk.urls"
WSGI_APPLICATION = None
ASGI_APPLICATION = "helpdesk.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "helpdesk.tenancy.tenant_context",
                "helpdesk.context_processors.inbound_attention",
            ],
        },
    },
]

DATABASES = {
    "default": parse_database_url(env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"))
}
# 0: a connection per request, closed at its end. Under ASGI, Django runs each request's sync
# code in a thread of its own, and a persistent connection belongs to the thread that opened it:
# it would be left open, never reused, until PostgreSQL runs out of slots (Django's deployment
# guidance). To make connecting cheap, put PgBouncer in front (session or transaction pooling:
# app.tenant_id is only ever set transaction-locally; README).
DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 0)
if DATABASES["default"]["CONN_MAX_AGE"] != 0:
    raise ImproperlyConfigured(
        "DATABASE_CONN_MAX_AGE must be 0: under ASGI persistent connections are per thread and "
        "leak. Put PgBouncer (session or transaction pooling) in front of PostgreSQL instead."
    )
# The owner role: `manage.py migrate` and the test suite's set-up log in with it (tables,
# policies, grants); DATABASE_URL's role may only read and write rows (helpdesk.db.roles).
DATABASE_MIGRATE_URL = env_str("DATABASE_MIGRATE_URL")
if env_str("DATABASE_TEST_NAME"):  # lets parallel test runs on one server keep apart
    DATABASES["default"]["TEST"] = {"NAME": env_str("DATABASE_TEST_NAME")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")

# The cache holds rate-limit counters (sign-in, inbound, API) and used TOTP codes: in Redis they
# hold across processes. Its own key prefix keeps it apart from Celery and the channel layer.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "helpdesk-cache"),
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# The channel layer may be spread over several Redis nodes: CHANNEL_LAYER_REDIS_URLS, comma-
# separated, becomes channels-redis' `hosts`, which it shards over (a channel or group name is
# hashed to one node). Every web and worker process must list the same nodes in the same order.
# Unset, the layer uses REDIS_URL like the broker and the cache (docs/scaling.md).
CHANNEL_LAYER_REDIS_URLS = env_list("CHANNEL_LAYER_REDIS_URLS") or (
    [REDIS_URL] if REDIS_URL else []
)
if CHANNEL_LAYER_REDIS_URLS:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": address,
                        # An idle socket waits in BZPOPMIN for 5 s (channels-redis' brpop_timeout).
                        # redis-py 8 defaults socket_timeout to 5 s, so that wait raised
                        # TimeoutError and closed agents' sockets; 7.x waited forever. 15 s
                        # outlasts the wait on both and still notices a dead Redis.
                        "socket_timeout": 15,
                        "socket_connect_timeout": 5,
                    }
                    for address in CHANNEL_LAYER_REDIS_URLS
                ],
                "prefix": env_str("CHANNEL_LAYER_PREFIX", "helpdesk"),
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Celery: a real broker when REDIS_URL is set, otherwise tasks run inline (eagerly).
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Under acks_late, Redis hands a task it has not seen acknowledged within the visibility timeout
# (1 h by default) to another worker, and a retry waiting for its countdown is unacknowledged
# all that time: the longest retry (channels_in.tasks.backoff(MAX_RETRIES - 1), 30 s x 4**4,
# about 2 h 8 min) would run twice. 3 h is above it (a test keeps it so). The price: a task
# whose worker died waits 3 h for redelivery (the inbound sweep requeues payloads sooner, and an
# agent may send again a reply stuck "sending").
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3 * 60 * 60}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Pool processes per worker: empty means Celery's default, one per CPU (docs/scaling.md). The
# worker's --concurrency option, where given, wins.
CELERY_WORKER_CONCURRENCY = env_int("CELERY_CONCURRENCY", 0) or None
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Workers ride out a broker outage however long it lasts (Celery's default gives up after 100
# tries and the worker exits).
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# Publishing gives up fast when the broker is down: the payload is already stored, and the
# sweep queues it once the broker is back, so a web request must not hang on it.
CELERY_BROKER_CONNECTION_TIMEOUT = env_int("CELERY_BROKER_CONNECTION_TIMEOUT", 2)
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
CELERY_BEAT_SCHEDULE = {
    "poll-imap-mailboxes": {
        "task": "channels_in.tasks.poll_all_mailboxes",
        "schedule": env_int("HELPDESK_IMAP_POLL_SECONDS", 60),
    },
    "retry-stuck-inbound": {
        "task": "channels_in.tasks.requeue_stale_inbound",
        "schedule": env_int("HELPDESK_INBOUND_SWEEP_SECONDS", 30),
    },
    # Presence timeouts, queued work, missed service-level targets (tickets/tasks.py).
    "sweep-routing": {
        "task": "tickets.tasks.sweep_routing",
        "schedule": env_int("HELPDESK_ROUTING_SWEEP_SECONDS", 15),
    },
    # Escalation-rate and defect-rate alerts of every merchant (escalation/tasks.py).
    "sweep-alerts": {
        "task": "escalation.tasks.sweep_alerts",
        "schedule": env_int("HELPDESK_ALERT_SWEEP_SECONDS", 300),
    },
    # Merchants whose deletion grace period is over are deleted (helpdesk/deletion.py).
    "delete-due-tenants": {
        "task": "helpdesk.tasks.delete_due_tenants",
        "schedule": env_int("HELPDESK_TENANT_DELETION_SWEEP_SECONDS", 3600),
    },
}
# A merchant's data export may be downloaded for this many days (helpdesk/exports.py).
HELPDESK_EXPORT_DAYS = env_int("HELPDESK_EXPORT_DAYS", 7)
# A merchant asked to be deleted keeps working this many days, then is gone for good.
HELPDESK_TENANT_DELETION_DAYS = env_int("HELPDESK_TENANT_DELETION_DAYS", 30)
# Where people reach the helpdesk: links in emails sent outside a request (supervisor alerts).
HELPDESK_PUBLIC_URL = env_str("HELPDESK_PUBLIC_URL", "http://localhost:8000")
# How long the supervisor dashboard keeps its 30-day sections (agents, root causes, defect
# rates) per merchant before counting them again; 0 counts them on every view.
HELPDESK_DASHBOARD_CACHE_SECONDS = env_int("HELPDESK_DASHBOARD_CACHE_SECONDS", 60)
# An agent whose browser stops sending heartbeats is away after this long, offline after that.
HELPDESK_PRESENCE_AWAY_SECONDS = env_int("HELPDESK_PRESENCE_AWAY_SECONDS", 60)
HELPDESK_PRESENCE_OFFLINE_SECONDS = env_int("HELPDESK_PRESENCE_OFFLINE_SECONDS", 300)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "tickets:list"
LOGOUT_REDIRECT_URL = "login"

# Sign-in is django-allauth's (login limits, TOTP); the model backend stays for the admin's own
# checks and force_login in tests.
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
ACCOUNT_ADAPTER = "helpdesk.sign_in.AccountAdapter"
ACCOUNT_FORMS = {
    "login": "helpdesk.sign_in.SignInForm",
    "signup": "helpdesk.signup_forms.MerchantSignupForm",
}
ACCOUNT_LOGIN_METHODS = {"username", "email"}
# Merchants sign themselves up at /signup/ (helpdesk.signup); off, only invitations and the
# operator add people.
HELPDESK_SIGNUP_OPEN = env_bool("HELPDESK_SIGNUP_OPEN", True)
# A person signs in with their email; the username is made from it.
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*"]
# One account per email across the platform (also a unique index on lower(email)).
ACCOUNT_UNIQUE_EMAIL = True
# Signing up sends a link to verify the address; until then the owner may not invite people or
# issue API keys (helpdesk.signup.require_verified_email), everything else works.
ACCOUNT_EMAIL_VERIFICATION = "optional"
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Helpdesk] "
ACCOUNT_SIGNUP_REDIRECT_URL = "onboarding"
ACCOUNT_EMAIL_CONFIRMATION_AUTHENTICATED_REDIRECT_URL = "onboarding"
ACCOUNT_EMAIL_CONFIRMATION_EXPIRE_DAYS = 7
# An invitation link works this many days (helpdesk.invitations).
HELPDESK_INVITATION_DAYS = env_int("HELPDESK_INVITATION_DAYS", 7)
ACCOUNT_SESSION_REMEMBER = True  # as before allauth: a sign-in lasts the session cookie's age
ACCOUNT_LOGOUT_REDIRECT_URL = LOGOUT_REDIRECT_URL
# Held in the cache (Redis when REDIS_URL is set), so every web process counts together.
# "login" answers 429 past it; "login_failed" refuses even the right password, per IP and per
# account (the "key" is the username or email typed), until the window has passed.
ACCOUNT_RATE_LIMITS = {
    "login": env_str("HELPDESK_LOGIN_RATE", "30/m/ip"),
    "login_failed": env_str("HELPDESK_LOGIN_FAILED_RATE", "20/m/ip,5/5m/key"),
    # New merchants per address, and password reset mails per address and per email typed.
    "signup": env_str("HELPDESK_SIGNUP_RATE", "10/h/ip"),
    "reset_password": env_str("HELPDESK_PASSWORD_RESET_RATE", "10/m/ip,3/h/key"),
    "reset_password_from_key": env_str("HELPDESK_PASSWORD_RESET_KEY_RATE", "20/m/ip"),
}
# Behind reverse proxies of ours, the client address is the one they put in X-Forwarded-For;
# with none trusted (the default) a forged header cannot dodge the per-address limits.
ALLAUTH_TRUSTED_PROXY_COUNT = env_int("HELPDESK_TRUSTED_PROXY_COUNT", 0)
# Platform operators (superusers) act for every merchant: they must use TOTP (see
# helpdesk.sign_in.OperatorTotpRequiredMiddleware); anyone else may opt in.
MFA_SUPPORTED_TYPES = ["totp"]
MFA_TOTP_ISSUER = "Helpdesk"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "media")))
MEDIA_URL = "media/"  # never served directly: attachments go through a tenant-checked view
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# Default outbound mail; each email channel may carry its own SMTP server. In development with
# no mail server configured, mail is written to a local outbox (shown at /dev/outbox/) instead,
# so an agent's reply goes out rather than failing on localhost:25.
HELPDESK_DEV_OUTBOX_DIR = Path(env_str("HELPDESK_DEV_OUTBOX_DIR", str(BASE_DIR / "outbox")))
_MAIL_SERVER_CONFIGURED = bool(env_str("EMAIL_BACKEND") or env_str("EMAIL_HOST"))
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.filebased.EmailBackend"
    if DEBUG and not _MAIL_SERVER_CONFIGURED
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_FILE_PATH = HELPDESK_DEV_OUTBOX_DIR
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "helpdesk@localhost")
# The platform relay (the connection above) sends From a merchant's own address only for the
# domains listed here, whose DNS publishes the relay's DKIM key under this selector: the
# signature is what lets the mail pass DMARC. Other merchants' replies go From
# DEFAULT_FROM_EMAIL with the merchant's name and a Reply-To (see channels_in.email).
HELPDESK_RELAY_DKIM_DOMAINS = [domain.lower() for domain in env_list("HELPDESK_RELAY_DKIM_DOMAINS")]
HELPDESK_RELAY_DKIM_SELECTOR = env_str("HELPDESK_RELAY_DKIM_SELECTOR")
HELPDESK_RELAY_DKIM_PRIVATE_KEY = env_str("HELPDESK_RELAY_DKIM_PRIVATE_KEY")
if HELPDESK_RELAY_DKIM_DOMAINS and not (
    HELPDESK_RELAY_DKIM_SELECTOR and HELPDESK_RELAY_DKIM_PRIVATE_KEY
):
    raise ImproperlyConfigured(
        "HELPDESK_RELAY_DKIM_DOMAINS needs HELPDESK_RELAY_DKIM_SELECTOR and "
        "HELPDESK_RELAY_DKIM_PRIVATE_KEY (or _FILE)"
    )
# Servers merchants name (IMAP, SMTP, later webhooks) must be public addresses on their
# service's usual ports (helpdesk.egress). The operator may allow more: host:port entries,
# comma-separated, matched against the host as typed (IPv6 as [::1]:993).
HELPDESK_EGRESS_ALLOW = env_list("HELPDESK_EGRESS_ALLOW")
for _entry in HELPDESK_EGRESS_ALLOW:
    if not re.fullmatch(r".+:[0-9]+", _entry):
        raise ImproperlyConfigured(f"HELPDESK_EGRESS_ALLOW entry {_entry!r} is not host:port")

# Fernet keys (comma-separated, newest first) encrypting stored mailbox passwords.
HELPDESK_FERNET_KEYS = env_list("HELPDESK_FERNET_KEYS")
# Messages of one customer on one channel within this window join their open ticket.
HELPDESK_THREAD_WINDOW_HOURS = env_int("HELPDESK_THREAD_WINDOW_HOURS", 72)
# A newly connected mailbox brings in its last few days of mail; older mail via import_mail.
HELPDESK_IMAP_FIRST_SYNC_DAYS = env_int("HELPDESK_IMAP_FIRST_SYNC_DAYS", 7)
HELPDESK_INBOUND_MAX_BYTES = env_int("HELPDESK_INBOUND_MAX_BYTES", 40 * 1024 * 1024)
# Each email channel's forwarding address is "<merchant>+<token>@HELPDESK_INBOUND_DOMAIN"; the
# domain's MX record points at the SMTP service (`manage.py serve_smtp`, channels_in.smtp_server),
# which listens on HELPDESK_SMTP_HOST:PORT and offers STARTTLS when given a certificate and key.
HELPDESK_INBOUND_DOMAIN = env_str("HELPDESK_INBOUND_DOMAIN", "inbound.localhost").strip().lower()
if not re.fullmatch(
    r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*", HELPDESK_INBOUND_DOMAIN
):
    raise ImproperlyConfigured(
        f"HELPDESK_INBOUND_DOMAIN={HELPDESK_INBOUND_DOMAIN!r} is not a domain"
    )
HELPDESK_SMTP_HOST = env_str("HELPDESK_SMTP_HOST", "127.0.0.1")
HELPDESK_SMTP_PORT = env_int("HELPDESK_SMTP_PORT", 2525)
HELPDESK_SMTP_TLS_CERT = env_str("HELPDESK_SMTP_TLS_CERT")
HELPDESK_SMTP_TLS_KEY = env_str("HELPDESK_SMTP_TLS_KEY")
if bool(HELPDESK_SMTP_TLS_CERT) != bool(HELPDESK_SMTP_TLS_KEY):
    raise ImproperlyConfigured(
        "Set both HELPDESK_SMTP_TLS_CERT and HELPDESK_SMTP_TLS_KEY, or neither"
    )
# A request whose body has not fully arrived this long after its headers is answered 408, so a
# client that declares more than it sends cannot hold a worker (helpdesk/asgi_limits.py).
HELPDESK_BODY_TIMEOUT_SECONDS = env_int("HELPDESK_BODY_TIMEOUT_SECONDS", 30)
# Quotas ("count/period", period s, m, h or d) per inbound channel and per API key; past them
# the answer is 429 with Retry-After.
HELPDESK_INBOUND_RATE = env_str("HELPDESK_INBOUND_RATE", "600/m")
HELPDESK_API_RATE = env_str("HELPDESK_API_RATE", "120/m")
# After an admin rotates a channel's inbound secret, the old one still works this long, so mail
# keeps arriving while the merchant updates their forwarder.
HELPDESK_SECRET_GRACE_HOURS = env_int("HELPDESK_SECRET_GRACE_HOURS", 24)
# A received payload that no worker holds and that was queued longer ago than this (or never,
# because the broker was down) is queued again by the sweep. With the sweep every 30 s, a
# payload whose worker was killed is picked up again within about two minutes.
HELPDESK_INBOUND_STALE_SECONDS = env_int("HELPDESK_INBOUND_STALE_SECONDS", 90)
# Signed webhooks (helpdesk.signing): a signed request whose timestamp is further than this from
# our clock is refused, either way. Ours are posted with this timeout each try, and retried after
# RETRY_SECONDS, then 4 times longer each time (6 tries in all).
HELPDESK_WEBHOOK_TOLERANCE_SECONDS = env_int("HELPDESK_WEBHOOK_TOLERANCE_SECONDS", 300)
HELPDESK_WEBHOOK_TIMEOUT_SECONDS = env_int("HELPDESK_WEBHOOK_TIMEOUT_SECONDS", 10)
HELPDESK_WEBHOOK_RETRY_SECONDS = env_int("HELPDESK_WEBHOOK_RETRY_SECONDS", 30)
# Files a JSON API message links to are downloaded with this time limit each (helpdesk.http); a
# file that takes longer is listed on the message as missing.
HELPDESK_ATTACHMENT_FETCH_TIMEOUT_SECONDS = env_int("HELPDESK_ATTACHMENT_FETCH_TIMEOUT_SECONDS", 10)
# WeChat Official Accounts (channels_in.wechat): the API replies and media downloads go to (tests
# point it at a local server), and the time limit of each call to it.
HELPDESK_WECHAT_API_BASE = env_str("HELPDESK_WECHAT_API_BASE", "https://api.weixin.qq.com")
HELPDESK_WECHAT_TIMEOUT_SECONDS = env_int("HELPDESK_WECHAT_TIMEOUT_SECONDS", 10)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "helpdesk.api_auth.ApiKeyAuthentication",
        "helpdesk.api_auth.TenantSessionAuthentication",
    ],
    # Cursor pages (helpdesk.api_pagination): stable under inserts, and as fast on page 10,000
    # of a million tickets as on page 1.
    "DEFAULT_PAGINATION_CLASS": "helpdesk.api_pagination.CursorPage",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "helpdesk.api_auth.KeyScopeRequired",
        # Last: a repeated Idempotency-Key answers with the first result (helpdesk.idempotency).
        "helpdesk.api_permissions.IdempotencyKeyHonoured",
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        "helpdesk.throttles.ApiKeyThrottle",
        "helpdesk.throttles.ApiClientAddressThrottle",
    ],
    "EXCEPTION_HANDLER": "helpdesk.errors.api_exception_handler",
}
# The OpenAPI 3 description of /api/v1/ (drf-spectacular), served at /api/schema/ and read by
# the docs page at /api/docs/ (no CDN: the page and its script are ours).
SPECTACULAR_SETTINGS = {
    "TITLE": "Helpdesk API",
    "DESCRIPTION": (
        "The merchant's helpdesk over HTTP: customers, orders, tickets, messages, remedies, "
        "approvals, escalations, metrics and webhook subscriptions. Authenticate with "
        "`Authorization: Bearer hd_...` (Settings, API keys). Every error is "
        '`{"message", "code", "extra"}`.'
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Choice sets that share a field name get their own names in the schema.
    "ENUM_NAME_OVERRIDES": {
        "TicketStatus": "tickets.models.Ticket.Status",
        "TicketPriority": "tickets.models.Ticket.Priority",
        "OrderStatus": "tickets.models.Order.Status",
        "RemedyKind": "escalation.models.RemedyKind",
        "IdentityKind": "tickets.models.IdentityKind",
        "Channel": "tickets.models.Channel",
        "WebhookEvent": "helpdesk.models.WebhookEvent",
    },
}
# The API per client address (signed-in sessions and keys alike), besides the per-key quota.
HELPDESK_API_ADDRESS_RATE = env_str("HELPDESK_API_ADDRESS_RATE", "600/m")
# Wrong API keys one address may send before it is refused for the rest of the window (429).
HELPDESK_API_BAD_KEY_RATE = env_str("HELPDESK_API_BAD_KEY_RATE", "30/10m")
# How long an Idempotency-Key is remembered (helpdesk.idempotency).
HELPDESK_IDEMPOTENCY_HOURS = env_int("HELPDESK_IDEMPOTENCY_HOURS", 24)

# Production safety: secure cookies and HSTS unless DEBUG.
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
# Preloading is a commitment for the whole domain: an explicit opt-in, hence W021 silenced.
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
# Trusting X-Forwarded-Proto is right only behind a proxy that sets it (and strips the client's):
# otherwise any client could claim https and get secure-only behaviour over plain http.
HELPDESK_BEHIND_PROXY = env_bool("DJANGO_BEHIND_PROXY", False)
if HELPDESK_BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Health probes come over plain http from inside the container or the load balancer.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Django's default (2.5 MB) everywhere; the inbound endpoint alone reads up to
# HELPDESK_INBOUND_MAX_BYTES itself (channels_in.views.inbound).
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
# The agent's composer (a reply, a note or a new conversation with files) may post up to this;
# the merchant's attachment limit (at most 100 MB) is checked on the files themselves.
HELPDESK_UPLOAD_MAX_BYTES = env_int("HELPDESK_UPLOAD_MAX_BYTES", 105 * 1024 * 1024)
# Imports of customers and orders (tickets.imports): the largest file an admin may upload, and
# the most rows one file may hold (an XLSX archive that unpacks to far more is refused too).
HELPDESK_IMPORT_MAX_BYTES = env_int("HELPDESK_IMPORT_MAX_BYTES", 50 * 1024 * 1024)
HELPDESK_IMPORT_MAX_ROWS = env_int("HELPDESK_IMPORT_MAX_ROWS", 1_000_000)
CELERY_BEAT_SCHEDULE["sweep-imports"] = {"task": "tickets.tasks.sweep_imports", "schedule": 600}

# Content-Security-Policy: scripts and styles only from our own static files, so customer content
# that got past the sanitiser still cannot run or restyle the page. The sanitiser strips mail's
# style attributes and <style> blocks, and our templates keep their styles in helpdesk.css (a
# test holds them to it). Images may be data: URIs.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "frame-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
    }
}

# One JSON object per line (key=value in DEBUG) with request_id, tenant_id and raw_inbound_id
# where they apply; see helpdesk/logging.py.
LOGGING = logging_config(debug=DEBUG, level=env_str("LOG_LEVEL", "INFO"))
# Workers log through the same configuration instead of Celery's own plain-text format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Errors go to Sentry only when a DSN is set, and never with personal data.
SENTRY_DSN = env_str("SENTRY_DSN")
init_sentry(
    dsn=SENTRY_DSN,
    environment=env_str("SENTRY_ENVIRONMENT", "development" if DEBUG else "production"),
    release=env_str("SENTRY_RELEASE") or None,
)

# Live web chat (channels_in.chat*): how many messages one visitor may send per window (a
# burst past it is refused in the widget, earlier messages kept), the largest file a visitor
# may upload (the merchant's attachment limit applies too), and when a quiet visitor is gone
# (agents' replies then go by email when the visitor gave an address).
HELPDESK_CHAT_VISITOR_RATE = env_str("HELPDESK_CHAT_VISITOR_RATE", "8/10s")
HELPDESK_CHAT_UPLOAD_MAX_BYTES = env_int("HELPDESK_CHAT_UPLOAD_MAX_BYTES", 10 * 1024 * 1024)
HELPDESK_CHAT_VISITOR_GONE_SECONDS = env_int("HELPDESK_CHAT_VISITOR_GONE_SECONDS", 90)

# The phone channel: call-backs that fall due are announced to agents' open pages, so their
# "Call-backs due" view refreshes at the time (channels_in.phone_tasks).
CELERY_IMPORTS = ["channels_in.phone_tasks"]
CELERY_BEAT_SCHEDULE["announce-due-call-backs"] = {
    "task": "channels_in.phone_tasks.announce_due_call_backs",
    "schedule": env_int("HELPDESK_CALL_BACK_SWEEP_SECONDS", 30),
}
