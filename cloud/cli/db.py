"""`mcode cloud db ...`: schema migrations (cloud/migrate.py). The URL is --db-url or
MCODE_CLOUD_DB_URL; `mcode cloud run` migrates at startup too, so `upgrade` is for doing it ahead."""

from __future__ import annotations

from typing import Annotated

import typer

from cloud.settings import ENV_PREFIX, Settings

app = typer.Typer(help="Database schema: migrate, show the version, write a new migration.",
                  no_args_is_help=True)

DbUrlOpt = Annotated[str | None, typer.Option(help=f"SQLAlchemy URL [env {ENV_PREFIX}DB_URL]")]


def _url(db_url: str | None) -> str:
    return db_url or Settings.from_env().db_url


@app.command("upgrade")
def upgrade(db_url: DbUrlOpt = None,
            revision: Annotated[str, typer.Option(help="target revision")] = "head") -> None:
    """Migrate the database to the newest schema (or --revision), making it if it is empty."""
    from cloud.settings import SettingsError
    from cloud.store import migrate

    url = _url(db_url)
    try:  # revision 0005 seals stored device keys: it needs MCODE_CLOUD_MASTER_KEY
        migrate.upgrade(url, revision, master_key=Settings.from_env().master_key)
    except SettingsError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    print(f"{migrate.current(url)} (head {migrate.head()})")


@app.command("current")
def current(db_url: DbUrlOpt = None) -> None:
    """Print the database's schema revision and the newest one in cloud/migrations/."""
    from cloud.store import migrate

    print(f"{migrate.current(_url(db_url)) or 'none'} (head {migrate.head()})")


@app.command("revision")
def revision(message: Annotated[str, typer.Option("-m", "--message", help="what the migration does")],
             empty: Annotated[bool, typer.Option(help="an empty script, for data migrations")] = False,
             db_url: Annotated[str, typer.Option(help="database to compare the models with, at head")]
             = "sqlite://") -> None:
    """Write the next migration into cloud/migrations/versions/: by default what cloud/models.py
    has that the schema at head lacks (autogenerate). Review and edit it before committing."""
    from cloud.store import migrate

    print(migrate.revision(message, autogenerate=not empty, db_url=db_url))
