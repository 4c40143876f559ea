"""Every route of the enrollment service, room by room, as the gateway knows them: `router`, the
routes it sends on (each with its roles, `x-roles`); `internal`, those for the installation's
other services, which no gateway routes; and the two figures the gateway's config repeats, how
long a catalog listing may be reused and the CSV import's body limit (tests/test_gateway_routes.py
holds the config to all of them).

The app tries routes in this order: the enrollments room first, whose registration-day routes
come first in it (app/enrollment/enrollments/routes.py)."""

from fastapi import APIRouter

from app.enrollment.audit import routes as audit
from app.enrollment.catalog import routes as catalog
from app.enrollment.catalog.routes import CATALOG_CACHE_SECONDS
from app.enrollment.eligibility import routes as eligibility
from app.enrollment.eligibility.routes import CSV_MAX_BODY_BYTES
from app.enrollment.enrollments import routes as enrollments
from app.enrollment.notifications import routes as notifications
from app.enrollment.offers import routes as offers
from app.enrollment.people import routes as people
from app.enrollment.people.routes import internal
from app.enrollment.terms import routes as terms

__all__ = ["CATALOG_CACHE_SECONDS", "CSV_MAX_BODY_BYTES", "internal", "router"]

ROOMS = (enrollments, offers, catalog, eligibility, terms, people, audit, notifications)

router = APIRouter()
for room in ROOMS:
    router.routes.extend(room.route.routes)
