"""Who runs a rollout command, as far as the environment tells: the OS user and MLP_ACTOR.

NOTE: this is not authentication. Both values come from the process environment (``getpass``
reads LOGNAME, USER, LNAME or USERNAME before the password database), so anyone who can set
them or run the command under another OS account can claim another name. They make a
self-approval from one account visible and rejectable, nothing more; an identity provider
would be needed for real separation of duties.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass

from mlp_orchestration.settings import Settings


@dataclass(frozen=True)
class EnvironmentIdentity:
    """The OS user running the process and the MLP_ACTOR setting, each None when unknown."""

    os_user: str | None
    mlp_actor: str | None

    def as_dict(self) -> dict[str, str | None]:
        return {"os_user": self.os_user, "mlp_actor": self.mlp_actor}

    @classmethod
    def from_dict(cls, value: object) -> EnvironmentIdentity | None:
        """Read an identity stored by ``as_dict``; None for anything else."""
        if not isinstance(value, dict):
            return None
        os_user, mlp_actor = value.get("os_user"), value.get("mlp_actor")
        return cls(
            os_user=os_user if isinstance(os_user, str) and os_user else None,
            mlp_actor=mlp_actor if isinstance(mlp_actor, str) and mlp_actor else None,
        )


def environment_identity(settings: Settings) -> EnvironmentIdentity:
    """Return the OS user of this process and MLP_ACTOR when it is set explicitly."""
    try:
        os_user: str | None = getpass.getuser()
    except (KeyError, OSError):
        # Python 3.11 raises KeyError and 3.13 OSError when no variable or passwd entry exists.
        os_user = None
    # Settings.actor defaults to the OS user; only a value set in the environment says more.
    mlp_actor = settings.actor if "actor" in settings.model_fields_set else None
    return EnvironmentIdentity(os_user=os_user or None, mlp_actor=mlp_actor)
