"""Paging of every API list (its own module: DRF imports it while loading its views)."""

from rest_framework import pagination


class PageNumberPagination(pagination.PageNumberPagination):
    """``?page=`` and ``?page_size=`` (at most 200); answers carry count, next and previous."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
