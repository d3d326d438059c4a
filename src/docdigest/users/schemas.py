"""What the accounts API reads and returns (never a password or a hash)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SignupIn(BaseModel):
    email: str = Field(max_length=320)
    name: str = Field(max_length=200)
    password: str = Field(max_length=1024)


class LoginIn(BaseModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    name: str
    is_admin: bool
    digest_opt_in: bool
    digest_hour: int
    timezone: str
    created_at: datetime


class LoginOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    csrf_token: str
    user: UserOut


class ProfileIn(BaseModel):
    name: str | None = None
    digest_opt_in: bool | None = None
    digest_hour: int | None = None
    timezone: str | None = None


class PasswordChangeIn(BaseModel):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


class AccountDeleteIn(BaseModel):
    password: str = Field(max_length=1024)


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None


class NewTokenOut(TokenOut):
    token: str = Field(description="Shown only once; store it now.")
