"""Model building blocks shared by the clinic's apps."""

import uuid

from django.db import models


class PublicModel(models.Model):
    """A record addressed from URLs and the API by an opaque UUID, never a sequence."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
