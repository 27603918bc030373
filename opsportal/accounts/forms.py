from __future__ import annotations

from django import forms
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password

from opsportal.portal.forms import StyledForm, StyledFormMixin

from .roles import Role

EXPIRY_CHOICES = [("", "Never"), ("7", "7 days"), ("30", "30 days"), ("90", "90 days"), ("365", "1 year")]


class TokenCreateForm(StyledForm):
    name = forms.CharField(max_length=100, help_text="What will use it, e.g. 'alertmanager on prod-1'.")
    expires_in_days = forms.TypedChoiceField(
        choices=EXPIRY_CHOICES, required=False, coerce=int, empty_value=None, label="Expires"
    )


class UserCreateForm(StyledForm):
    username = forms.RegexField(regex=r"^[\w.@+-]+\Z", max_length=150, help_text="Letters, digits and @ . + - _ only.")
    email = forms.EmailField(required=False)
    first_name = forms.CharField(max_length=150, required=False)
    last_name = forms.CharField(max_length=150, required=False)
    role = forms.ChoiceField(choices=Role.choices(), initial="viewer")
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        required=False,
        help_text="Leave empty to create the account without a password (it cannot log in until one is set).",
    )

    def clean_username(self) -> str:
        username = self.cleaned_data["username"]
        if User.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError(f"A user named {username!r} already exists.")
        return username

    def clean(self) -> dict:
        data = super().clean()
        if data.get("password"):
            validate_password(data["password"], User(username=data.get("username", ""), email=data.get("email", "")))
        return data


class UserUpdateForm(StyledForm):
    email = forms.EmailField(required=False)
    first_name = forms.CharField(max_length=150, required=False)
    last_name = forms.CharField(max_length=150, required=False)
    role = forms.ChoiceField(choices=Role.choices())
    is_active = forms.BooleanField(
        required=False, label="Active", help_text="Inactive users cannot log in or use tokens."
    )
    new_password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        required=False,
        help_text="Set a new password for this user (leave empty to keep it).",
    )

    def __init__(self, *args, user: User, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_new_password(self) -> str:
        password = self.cleaned_data.get("new_password", "")
        if password:
            validate_password(password, self.user)
        return password


class LoginForm(StyledFormMixin, AuthenticationForm):
    pass


class StyledPasswordChangeForm(StyledFormMixin, PasswordChangeForm):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # On the profile page the token form comes first; don't pull focus to the password.
        self.fields["old_password"].widget.attrs.pop("autofocus", None)
