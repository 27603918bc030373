from __future__ import annotations

from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.utils import timezone
from rest_framework import serializers

from ..models import ApiToken
from ..roles import Role, role_of


class RoleField(serializers.ChoiceField):
    def __init__(self, **kwargs) -> None:
        super().__init__(choices=[r.group_name for r in Role], **kwargs)

    def to_internal_value(self, data) -> Role:
        return Role.from_name(super().to_internal_value(data))

    def to_representation(self, value) -> str | None:
        return value.group_name if value else None


class UserSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = [
            "id",
            "username",
            "email",
            "first_name",
            "last_name",
            "is_active",
            "role",
            "last_login",
            "date_joined",
        ]
        read_only_fields = fields

    def get_role(self, user: User) -> str | None:
        role = role_of(user)
        return role.group_name if role else None


class UserCreateSerializer(serializers.Serializer):
    username = serializers.RegexField(r"^[\w.@+-]+\Z", max_length=150)
    email = serializers.EmailField(required=False, default="")
    first_name = serializers.CharField(max_length=150, required=False, default="")
    last_name = serializers.CharField(max_length=150, required=False, default="")
    role = RoleField()
    password = serializers.CharField(write_only=True, required=False, allow_blank=True, default="")

    def validate_username(self, value: str) -> str:
        if User.objects.filter(username__iexact=value).exists():
            raise serializers.ValidationError(f"A user named {value!r} already exists.")
        return value

    def validate(self, attrs: dict) -> dict:
        if attrs.get("password"):
            validate_password(attrs["password"], User(username=attrs["username"], email=attrs.get("email", "")))
        return attrs


class UserUpdateSerializer(serializers.Serializer):
    email = serializers.EmailField(required=False)
    first_name = serializers.CharField(max_length=150, required=False)
    last_name = serializers.CharField(max_length=150, required=False)
    role = RoleField(required=False)
    is_active = serializers.BooleanField(required=False)


class ApiTokenSerializer(serializers.ModelSerializer):
    status = serializers.CharField(read_only=True)

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at", "status"]
        read_only_fields = ["id", "prefix", "created_at", "last_used_at", "revoked_at", "status"]

    def validate_expires_at(self, value):
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("must be in the future.")
        return value


class NewApiTokenSerializer(ApiTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="The secret; shown only in this response.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]
