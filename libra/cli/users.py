"""`libra user ...`: accounts for the app."""

from __future__ import annotations

import getpass
import os
from typing import Annotated

import typer

from libra.cli.common import DataTable, DbOption, console, fail, open_store, out
from libra import accounts

user_app = typer.Typer(help="Accounts and roles for the app.", no_args_is_help=True)


def _password(given: str | None) -> str:
    if given:
        return given
    env = os.environ.get("LIBRA_PASSWORD")
    if env:
        return env
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        console.print("[red]the passwords differ[/]")
        raise typer.Exit(2)
    return first


@user_app.command("add")
def add(username: str, db: DbOption = None,
        role: Annotated[str, typer.Option(help="admin, annotator or viewer.")] = "annotator",
        email: Annotated[str | None, typer.Option(help="For identity-provider sign-in.")] = None,
        name: Annotated[str | None, typer.Option(help="Display name.")] = None,
        password: Annotated[str | None, typer.Option(help="Prefer $LIBRA_PASSWORD or the prompt.")] = None,
        oidc_only: Annotated[bool, typer.Option(help="No password: signs in through the identity provider.")] = False,
        ) -> None:
    """Add an account (the password is prompted for, or read from $LIBRA_PASSWORD)."""
    try:
        accounts.add_user(open_store(db, create=True), username, None if oidc_only else _password(password), role, name, email)
    except accounts.AccountError as exc:
        raise fail(str(exc)) from None
    out.print(f"added {username} ({role})")


@user_app.command("list")
def list_(db: DbOption = None) -> None:
    """Every account, its role and whether it is disabled."""
    df = accounts.list_users(open_store(db))
    t = DataTable("username", "role", "email", "disabled", "created")
    for r in df.itertuples(index=False):
        t.add_row(r.username, r.role, r.email or "", "yes" if r.disabled else "", f"{r.created_at:%Y-%m-%d}")
    out.print(t)


@user_app.command("disable")
def disable(username: str, db: DbOption = None) -> None:
    """Disable an account: it can no longer sign in; its feedback stays."""
    try:
        accounts.set_disabled(open_store(db), username, True)
    except accounts.AccountError as exc:
        raise fail(str(exc)) from None
    out.print(f"disabled {username}")


@user_app.command("role")
def role(username: str, new_role: Annotated[str, typer.Argument(metavar="ROLE", help="admin, annotator or viewer.")],
         db: DbOption = None) -> None:
    """Change an account's role; an open app session has the new role from its next action."""
    try:
        accounts.set_role(open_store(db), username, new_role)
    except accounts.AccountError as exc:
        raise fail(str(exc)) from None
    out.print(f"{username} is now {new_role}")


@user_app.command("enable")
def enable(username: str, db: DbOption = None) -> None:
    """Enable a disabled account again."""
    try:
        accounts.set_disabled(open_store(db), username, False)
    except accounts.AccountError as exc:
        raise fail(str(exc)) from None
    out.print(f"enabled {username}")


@user_app.command("passwd")
def passwd(username: str, db: DbOption = None,
           password: Annotated[str | None, typer.Option(help="Prefer $LIBRA_PASSWORD or the prompt.")] = None) -> None:
    """Set an account's password."""
    try:
        accounts.set_password(open_store(db), username, _password(password))
    except accounts.AccountError as exc:
        raise fail(str(exc)) from None
    out.print(f"password set for {username}")
