"""Creates a fresh Keystone deployment in a directory, for the end-to-end tests.

keystone_wsgi.py calls setup() in the gunicorn master before it loads the
application; by hand: `python keystone_setup.py DIR TOKEN_EXPIRATION_SECONDS`
with the Python of the Keystone virtualenv (test-support/src/keystone.rs makes it
from tests/keystone/requirements.txt).

In one process (one Keystone import instead of four `keystone-manage` runs) it
does what `keystone-manage db_sync`, `fernet_setup`, `credential_setup` and
`bootstrap --bootstrap-password secret` do, adds the test fixtures, and writes:

  DIR/keystone.conf   SQLite database, fernet tokens, the given expiration
  DIR/keystone.db     the database
  DIR/fernet-keys/    token (and receipt) keys
  DIR/credential-keys/
  DIR/fixtures.json   {"projects": {name: id}, "users": {name: id}, "roles": {name: id}}

Fixtures, all in domain "default", every password "secret":
  project admin:   user admin (role admin; bootstrap also grants admin on the system)
  project service: user glance (role service: enough for identity:validate_token)
  project alpha:   users alpha-member (member), alpha-reader (reader)
  project beta:    users beta-member (member), beta-reader (reader)
  project gamma:   user gamma-member (member)
Roles and implications are bootstrap's: admin => manager => member => reader, and service.
"""

import json
import os
import sys
import uuid

PASSWORD = "secret"
DOMAIN = "default"
# project -> [(user, role)]
FIXTURES = {
    "service": [("glance", "service")],
    "alpha": [("alpha-member", "member"), ("alpha-reader", "reader")],
    "beta": [("beta-member", "member"), ("beta-reader", "reader")],
    "gamma": [("gamma-member", "member")],
}

CONF_TEMPLATE = """\
[DEFAULT]
log_file = {dir}/keystone.log
[database]
sqlite_synchronous = false
connection = sqlite:///{dir}/keystone.db
[token]
provider = fernet
expiration = {expiration}
[fernet_tokens]
key_repository = {dir}/fernet-keys
[fernet_receipts]
key_repository = {dir}/fernet-keys
[credential]
key_repository = {dir}/credential-keys
[identity]
# bcrypt's cheapest cost: users are created and tokens issued quickly
password_hash_rounds = 4
"""


def setup(directory, expiration):
    """Creates the deployment in `directory`; returns what fixtures.json holds."""
    directory = os.path.abspath(directory)
    expiration = int(expiration)
    conf_file = os.path.join(directory, "keystone.conf")
    os.makedirs(directory, exist_ok=True)
    with open(conf_file, "w") as f:
        f.write(CONF_TEMPLATE.format(dir=directory, expiration=expiration))

    # Like keystone.server.configure / keystone-manage, without reading sys.argv.
    import keystone.conf
    from keystone.common import sql

    conf = keystone.conf.CONF
    keystone.conf.configure()
    sql.initialize()
    keystone.conf.set_config_defaults()
    conf(args=[], project="keystone", default_config_files=[conf_file])
    keystone.conf.setup_logging()

    # keystone-manage db_sync
    from keystone.common.sql import upgrades

    upgrades.offline_sync_database_to_version()

    # keystone-manage fernet_setup / credential_setup (owner: the current user)
    from keystone.common import fernet_utils
    from keystone.credential.providers import fernet as credential_fernet

    for repo, max_keys, group in (
        (conf.fernet_tokens.key_repository, conf.fernet_tokens.max_active_keys, "fernet_tokens"),
        (conf.credential.key_repository, credential_fernet.MAX_ACTIVE_KEYS, "credential"),
    ):
        futils = fernet_utils.FernetUtils(repo, max_keys, group)
        futils.create_key_directory(None, None)
        if not futils.validate_key_repository(requires_write=True):
            sys.exit(f"key repository {repo} is not usable")
        futils.initialize_key_repository(None, None)

    # keystone-manage bootstrap --bootstrap-password secret
    from keystone.cmd import bootstrap
    from keystone.common import provider_api

    b = bootstrap.Bootstrapper()
    b.admin_password = PASSWORD
    b.admin_username = "admin"
    b.project_name = "admin"
    b.admin_role_name = "admin"
    b.immutable_roles = True
    b.bootstrap()

    providers = provider_api.ProviderAPIs
    roles = {r["name"]: r["id"] for r in providers.role_api.list_roles()}
    projects = {"admin": b.project_id}
    users = {"admin": b.admin_user_id}
    for project, members in FIXTURES.items():
        pid = uuid.uuid4().hex
        providers.resource_api.create_project(
            pid,
            {
                "id": pid,
                "name": project,
                "domain_id": DOMAIN,
                "enabled": True,
                "description": f"glance e2e test project {project}",
            },
        )
        projects[project] = pid
        for user, role in members:
            u = providers.identity_api.create_user(
                {"name": user, "domain_id": DOMAIN, "enabled": True, "password": PASSWORD}
            )
            users[user] = u["id"]
            providers.assignment_api.create_grant(roles[role], user_id=u["id"], project_id=pid)

    fixtures = {"projects": projects, "users": users, "roles": roles}
    with open(os.path.join(directory, "fixtures.json"), "w") as f:
        json.dump(fixtures, f, indent=1)
    return fixtures


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    setup(sys.argv[1], sys.argv[2])


if __name__ == "__main__":
    main()
