"""factory_boy factories for the clinic's records."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import factory
from django.contrib.auth.models import Group, User
from django.utils import timezone

from maintenance.models import MaintenancePlan
from patients.models import Diagnosis, Patient, PatientStatus, PHQ9Assessment
from sessions.models import DoseUnit, Drug, Protocol, Route

#: Every factory user's password.
PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@clinic.test")
    password = factory.django.Password(PASSWORD)

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        if extracted:
            # get_or_create: transactional tests flush the groups the migration made.
            self.groups.add(Group.objects.get_or_create(name=extracted)[0])


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient
        skip_postgeneration_save = True

    mrn = factory.Sequence(lambda n: f"MRN{n:06d}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    date_of_birth = dt.date(1980, 5, 17)
    primary_diagnosis = Diagnosis.TREATMENT_RESISTANT_DEPRESSION
    status = PatientStatus.ACTIVE
    weight_kg = Decimal("72.5")
    weight_recorded_on = factory.LazyFunction(timezone.localdate)
    email = factory.LazyAttribute(lambda p: f"{p.first_name.lower()}@example.test")

    @factory.post_generation
    def with_portal_account(self, create, extracted, **kwargs):
        if extracted:
            self.user = UserFactory(username=f"portal_{self.mrn.lower()}", role="patient")
            self.save(update_fields=["user"])


class ProtocolFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Protocol
        django_get_or_create = ("name",)

    name = "IV induction 6 x twice weekly"
    infusion_count = 6
    infusions_per_week = 2
    route = Route.IV
    drug = Drug.KETAMINE
    dose_unit = DoseUnit.MG_PER_KG
    dose = Decimal("0.50")
    duration_minutes = 40


class PHQ9Factory(factory.django.DjangoModelFactory):
    """A PHQ-9 whose answers are all ``level`` unless items are given."""

    class Meta:
        model = PHQ9Assessment

    class Params:
        level = 1

    patient = factory.SubFactory(PatientFactory)
    taken_at = factory.LazyFunction(timezone.now)
    item_1 = factory.SelfAttribute("level")
    item_2 = factory.SelfAttribute("level")
    item_3 = factory.SelfAttribute("level")
    item_4 = factory.SelfAttribute("level")
    item_5 = factory.SelfAttribute("level")
    item_6 = factory.SelfAttribute("level")
    item_7 = factory.SelfAttribute("level")
    item_8 = factory.SelfAttribute("level")
    item_9 = 0


class MaintenancePlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MaintenancePlan

    patient = factory.SubFactory(PatientFactory)
    protocol = factory.SubFactory(ProtocolFactory)
    target_interval_days = 28
    min_interval_days = 14
    max_interval_days = 42
