"""Who gets which role: emails, domains and the provider's group claim from roles.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from lib import access
from lib.auth import user_from_claims

ROLES = """
group_claim = "groups"
[roles.support]
domains = ["corp.test"]
[roles.staff]
emails = ["Sam@Corp.Test"]
groups = ["billing-staff"]
[roles.finance]
groups = ["finance"]
[roles.admin]
emails = ["ada@corp.test"]
"""


@pytest.fixture
def rules(tmp_path: Path) -> access.RoleRules:
    path = tmp_path / "roles.toml"
    path.write_text(ROLES)
    return access.load_role_rules(str(path))


def test_domain_email_and_group_grants_add_up(rules: access.RoleRules) -> None:
    assert access.roles_for(rules, email="someone@corp.test") == {"support"}
    assert access.roles_for(rules, email="sam@corp.test") == {"support", "staff"}  # email match ignores case
    assert access.roles_for(rules, email="ada@corp.test", groups=["finance"]) == {"support", "admin", "finance"}
    assert access.roles_for(rules, email="x@partner.test", groups=["billing-staff"]) == {"staff"}


def test_near_misses_get_nothing(rules: access.RoleRules) -> None:
    assert access.roles_for(rules, email="eve@evilcorp.test") == frozenset()  # not a suffix match
    assert access.roles_for(rules, email="eve@sub.corp.test") == frozenset()  # subdomains are not the domain
    assert access.roles_for(rules, email="corp.test") == frozenset()
    assert access.roles_for(rules, email="", groups=["Finance"]) == frozenset()  # groups match exactly


def test_claims_from_the_provider(rules: access.RoleRules) -> None:
    user = user_from_claims({"email": "ada@corp.test", "email_verified": True, "name": "Ada",
                             "groups": "finance"}, rules)
    assert (user.email, user.name, user.roles) == ("ada@corp.test", "Ada", {"support", "admin", "finance"})
    # An email the provider has not verified grants nothing by email or domain; groups still count.
    unverified = user_from_claims({"email": "ada@corp.test", "email_verified": False, "groups": ["finance"]}, rules)
    assert unverified.roles == {"finance"}


def test_group_claim_name_is_configurable(tmp_path: Path) -> None:
    path = tmp_path / "roles.toml"
    path.write_text('group_claim = "roles"\n[roles.admin]\ngroups = ["BillingAdmin"]\n')
    rules = access.load_role_rules(str(path))
    assert user_from_claims({"email": "a@b.test", "roles": ["BillingAdmin"]}, rules).roles == {"admin"}
    assert user_from_claims({"email": "a@b.test", "groups": ["BillingAdmin"]}, rules).roles == frozenset()


def test_missing_file_means_nobody_has_a_role(tmp_path: Path) -> None:
    rules = access.load_role_rules(str(tmp_path / "absent.toml"))
    assert access.roles_for(rules, email="ada@corp.test", groups=["x"]) == frozenset()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[roles.superuser]\nemails = ['a@b.test']\n", "unknown role 'superuser'"),
        ("[roles.admin]\nemail = ['a@b.test']\n", "unknown keys ['email']"),
        ("[roles.admin]\nemails = 'a@b.test'\n", "must be a list of strings"),
        ("[roles.admin\n", "could not be read"),
        ("admins = ['a@b.test']\n", "unknown keys ['admins']"),
    ],
)
def test_malformed_file_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "roles.toml"
    path.write_text(text)
    with pytest.raises(access.RolesFileError, match=message.replace("[", r"\[").replace("]", r"\]")):
        access.load_role_rules(str(path))


def test_a_file_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    """An editor saving Latin-1 (a name with an accent in a comment) must not crash the gate."""
    path = tmp_path / "roles.toml"
    path.write_bytes("# Zoë's team\n[roles.admin]\nemails = ['a@b.test']\n".encode("latin-1"))
    with pytest.raises(access.RolesFileError, match="could not be read"):
        access.load_role_rules(str(path))


def test_shipped_example_roles_file_parses() -> None:
    rules = access.load_role_rules(str(Path(__file__).resolve().parents[2] / "roles.toml"))
    assert access.roles_for(rules, email="ada.admin@example.com") >= {"admin"}
    assert access.roles_for(rules, email="x@elsewhere.test", groups=["finance"]) == {"finance"}


@pytest.mark.parametrize("verified", [True, "true", "True", "TRUE"])
def test_an_explicitly_verified_email_grants_by_email_and_domain(rules: access.RoleRules, verified: object) -> None:
    user = user_from_claims({"email": "ada@corp.test", "email_verified": verified}, rules)
    assert user.roles == {"support", "admin"}


@pytest.mark.parametrize("claim", [
    {"email_verified": "False"}, {"email_verified": "false"}, {}, {"email_verified": None}, {"email_verified": 1},
    {"email_verified": "yes"}, {"email_verified": ""}, {"email_verified": [True]},
])
def test_anything_but_an_explicit_yes_grants_nothing_by_email(rules: access.RoleRules, claim: dict) -> None:
    user = user_from_claims({"email": "ada@corp.test", **claim}, rules)
    assert user.roles == frozenset()


def test_an_unverified_email_still_gets_its_groups(rules: access.RoleRules) -> None:
    user = user_from_claims({"email": "ada@corp.test", "email_verified": "False", "groups": ["finance"]}, rules)
    assert user.roles == {"finance"}


@pytest.fixture
def trusting(tmp_path: Path) -> access.RoleRules:
    path = tmp_path / "roles.toml"
    path.write_text('trusted_email_issuers = ["https://login.corp.test"]\n' + ROLES)
    return access.load_role_rules(str(path))


def test_trusted_issuers_are_parsed(trusting: access.RoleRules) -> None:
    assert trusting.trusted_email_issuers == {"https://login.corp.test"}


def test_a_trusted_issuer_vouches_for_emails_it_sends_without_the_claim(trusting: access.RoleRules) -> None:
    user = user_from_claims({"email": "ada@corp.test", "iss": "https://login.corp.test"}, trusting)
    assert user.roles == {"support", "admin"}


@pytest.mark.parametrize("iss", ["https://login.corp.test.evil.test", "https://login.corp.test/", "", None])
def test_other_issuers_are_not_trusted(trusting: access.RoleRules, iss: object) -> None:
    user = user_from_claims({"email": "ada@corp.test", "iss": iss}, trusting)
    assert user.roles == frozenset()


def test_a_trusted_issuer_that_says_unverified_is_believed(trusting: access.RoleRules) -> None:
    user = user_from_claims({"email": "ada@corp.test", "iss": "https://login.corp.test", "email_verified": "False"},
                            trusting)
    assert user.roles == frozenset()


@pytest.mark.parametrize(("text", "message"), [
    ('trusted_email_issuers = "https://login.corp.test"\n', "trusted_email_issuers must be a list of strings"),
    ('trusted_email_issuers = ["login.corp.test"]\n', "must hold issuer URLs"),
    ('trusted_issuers = ["https://login.corp.test"]\n', "unknown keys ['trusted_issuers']"),
])
def test_a_malformed_trusted_issuers_key_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "roles.toml"
    path.write_text(text)
    with pytest.raises(access.RolesFileError, match=message.replace("[", r"\[").replace("]", r"\]")):
        access.load_role_rules(str(path))
