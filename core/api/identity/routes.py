"""Every route of the Identity API, as data, bound to one :class:`IdentityLogic`.

``ApiContext`` has no slot for identity state, so :func:`make_routes` closes the
routes over the logic. Serving them (the ``identity`` service of ``nimbus serve``,
port 5000 by default)::

    logic = IdentityLogic.from_config(config.identity, store, runtime, catalog)
    await bootstrap(store, runtime, logic.passwords, admin_password=...)
    app = build_app(ApiContext(runtime, metrics, config.identity.public_url, store=store),
                    make_routes(logic), max_body_bytes=config.identity.max_body_bytes,
                    errors=format_error)
    runner = await start_http(app, config.identity.listen, config.identity.port)
"""

from __future__ import annotations

from nimbus.core.api.http import Route
from nimbus.core.api.identity import auth, projects, roles, users
from nimbus.core.api.identity.wire import format_error as format_error
from nimbus.core.api.identity.wire import route
from nimbus.core.identity.service import IdentityLogic

P = "/v3/projects/{project_id}"
U = "/v3/users/{user_id}"
GRANT = f"{P}/users/{{user_id}}/roles/{{role_id}}"


def make_routes(logic: IdentityLogic) -> tuple[Route, ...]:
    """The Identity API's routes, serving ``logic`` (a ``GET`` route also answers ``HEAD``)."""
    table = (
        ("GET", "/", auth.versions),
        ("GET", "/v3", auth.version_v3),
        ("GET", "/v3/", auth.version_v3),
        ("POST", "/v3/auth/tokens", auth.issue_token),
        ("GET", "/v3/auth/tokens", auth.validate_token),
        ("DELETE", "/v3/auth/tokens", auth.revoke_token),
        ("GET", "/v3/auth/catalog", auth.auth_catalog),
        ("GET", "/v3/auth/projects", auth.auth_projects),
        ("GET", "/v3/projects", projects.list_projects),
        ("POST", "/v3/projects", projects.create_project),
        ("GET", P, projects.show_project),
        ("PATCH", P, projects.update_project),
        ("DELETE", P, projects.delete_project),
        ("GET", "/v3/domains", projects.list_domains),
        ("GET", "/v3/domains/{domain_id}", projects.show_domain),
        ("GET", "/v3/users", users.list_users),
        ("POST", "/v3/users", users.create_user),
        ("GET", U, users.show_user),
        ("PATCH", U, users.update_user),
        ("DELETE", U, users.delete_user),
        ("POST", f"{U}/password", users.change_password),
        ("GET", f"{U}/projects", projects.user_projects),
        ("GET", "/v3/roles", roles.list_roles),
        ("POST", "/v3/roles", roles.create_role),
        ("GET", "/v3/roles/{role_id}", roles.show_role),
        ("DELETE", "/v3/roles/{role_id}", roles.delete_role),
        ("PUT", GRANT, roles.grant_role),
        ("GET", GRANT, roles.check_grant),
        ("DELETE", GRANT, roles.revoke_grant),
        ("GET", "/v3/role_assignments", roles.list_assignments),
    )
    return tuple(route(logic, method, path, handler) for method, path, handler in table)
