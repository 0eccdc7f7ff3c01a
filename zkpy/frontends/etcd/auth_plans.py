"""One handler per etcd auth change: the current AuthState and the request in, the znode
changes [(kind, name, data or None)] and the response out, or etcd's error raised. Pure: the
front end turns the changes into one guarded multi (EtcdFrontEnd._auth_ops)."""

from __future__ import annotations

from zkpy.frontends.etcd import auth as a
from zkpy.frontends.etcd.errors import EtcdError
from zkpy.frontends.etcd.proto import rpc_pb2


def _fail(error):
    raise EtcdError(*error)


def plan(op: str, request, state: a.AuthState):
    return _HANDLERS[op](request, state)


def _user(state: a.AuthState, name: str) -> a.User:
    user = state.users.get(name)
    if user is None:
        _fail(a.USER_NOT_FOUND)
    return user


def _role(state: a.AuthState, name: str) -> tuple:
    role = state.roles.get(name)
    if role is None:
        _fail(a.ROLE_NOT_FOUND)
    return role


def user_add(request, state):
    if not request.name:
        _fail(a.USER_EMPTY)
    if request.name in state.users:
        _fail(a.USER_EXISTS)
    no_password = request.options.no_password
    password = "" if no_password else a.hash_password(request.password)
    user = a.User(request.name, password, (), no_password)
    return [("users", request.name, a.user_data(user))], rpc_pb2.AuthUserAddResponse()


def user_delete(request, state):
    _user(state, request.name)
    if state.enabled and request.name == a.ROOT:
        _fail(a.INVALID_MANAGEMENT)
    return [("users", request.name, None)], rpc_pb2.AuthUserDeleteResponse()


def user_change_password(request, state):
    user = _user(state, request.name)
    changed = user._replace(password=a.hash_password(request.password), no_password=False)
    return [("users", user.name, a.user_data(changed))], \
        rpc_pb2.AuthUserChangePasswordResponse()


def user_grant_role(request, state):
    user = _user(state, request.user)
    if request.role != a.ROOT:
        _role(state, request.role)
    roles = tuple(sorted(set(user.roles) | {request.role}))
    return [("users", user.name, a.user_data(user._replace(roles=roles)))], \
        rpc_pb2.AuthUserGrantRoleResponse()


def user_revoke_role(request, state):
    user = _user(state, request.name)
    if request.role not in user.roles:
        _fail(a.ROLE_NOT_GRANTED)
    if state.enabled and request.name == a.ROOT and request.role == a.ROOT:
        _fail(a.INVALID_MANAGEMENT)
    roles = tuple(r for r in user.roles if r != request.role)
    return [("users", user.name, a.user_data(user._replace(roles=roles)))], \
        rpc_pb2.AuthUserRevokeRoleResponse()


def role_add(request, state):
    if not request.name:
        _fail(a.ROLE_EMPTY)
    if request.name in state.roles:
        _fail(a.ROLE_EXISTS)
    return [("roles", request.name, a.role_data(()))], rpc_pb2.AuthRoleAddResponse()


def role_delete(request, state):
    _role(state, request.role)
    if state.enabled and request.role == a.ROOT:
        _fail(a.INVALID_MANAGEMENT)
    changes = [("roles", request.role, None)]
    for user in state.users.values():  # etcd takes the role away from its users too
        if request.role in user.roles:
            roles = tuple(r for r in user.roles if r != request.role)
            changes.append(("users", user.name, a.user_data(user._replace(roles=roles))))
    return changes, rpc_pb2.AuthRoleDeleteResponse()


def role_grant_permission(request, state):
    permissions = list(_role(state, request.name))
    perm = request.perm
    granted = a.Permission(int(perm.permType), perm.key, perm.range_end)
    # The same range granted again takes the new type, as etcd's does.
    permissions = [p for p in permissions if (p.key, p.range_end) != (granted.key, granted.range_end)]
    permissions.append(granted)
    permissions.sort(key=lambda p: (p.key, p.range_end))
    return [("roles", request.name, a.role_data(permissions))], \
        rpc_pb2.AuthRoleGrantPermissionResponse()


def role_revoke_permission(request, state):
    permissions = list(_role(state, request.role))
    kept = [p for p in permissions if (p.key, p.range_end) != (request.key, request.range_end)]
    if len(kept) == len(permissions):
        _fail(a.PERMISSION_NOT_GRANTED)
    return [("roles", request.role, a.role_data(kept))], \
        rpc_pb2.AuthRoleRevokePermissionResponse()


def auth_enable(request, state):
    root = state.users.get(a.ROOT)
    if root is None:
        _fail(a.ROOT_USER_MISSING)
    if a.ROOT not in root.roles:
        _fail(a.ROOT_ROLE_MISSING)
    return [("enabled", "", b"1")], rpc_pb2.AuthEnableResponse()


def auth_disable(request, state):
    return [("enabled", "", None)], rpc_pb2.AuthDisableResponse()


_HANDLERS = {
    "UserAdd": user_add, "UserDelete": user_delete,
    "UserChangePassword": user_change_password, "UserGrantRole": user_grant_role,
    "UserRevokeRole": user_revoke_role, "RoleAdd": role_add, "RoleDelete": role_delete,
    "RoleGrantPermission": role_grant_permission,
    "RoleRevokePermission": role_revoke_permission,
    "AuthEnable": auth_enable, "AuthDisable": auth_disable,
}
CHANGES = frozenset(_HANDLERS)
READS = frozenset(("AuthStatus", "UserGet", "UserList", "RoleGet", "RoleList"))
