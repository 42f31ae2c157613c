"""Finance (placeholder while it is written)."""

from fastapi import APIRouter

router = APIRouter()
