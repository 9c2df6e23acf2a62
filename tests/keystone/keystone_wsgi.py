"""WSGI entry point of the test Keystone, loaded by gunicorn with preload_app
(see gunicorn_conf.py and test-support/src/keystone.rs).

Environment: OS_KEYSTONE_CONFIG_DIR (an empty directory for this instance, where
Keystone also finds keystone.conf) and GLANCE_TEST_KEYSTONE_EXPIRATION (token
lifetime in seconds).

The gunicorn master creates the deployment (keystone_setup.py) and then the
application, all in one process, so Keystone is imported once; the workers are
forked from it.
"""

import os
import sys

# Keystone parses the process's command line as its own options (oslo.config
# reads sys.argv when the application is configured): hide gunicorn's.
sys.argv = sys.argv[:1]

import keystone_setup  # noqa: E402

keystone_setup.setup(
    os.environ["OS_KEYSTONE_CONFIG_DIR"],
    os.environ.get("GLANCE_TEST_KEYSTONE_EXPIRATION", "3600"),
)

# The setup parsed the configuration, loaded Keystone's provider APIs and
# opened the database: start the application from a clean slate, as in a fresh
# process (the workers must not share the master's SQLite connections).
import keystone.conf  # noqa: E402
from keystone.common import provider_api  # noqa: E402
from keystone.common.sql import core as sql  # noqa: E402

keystone.conf.CONF.clear()
sql._get_main_context_manager().dispose_pool()
sql.cleanup()
provider_api.ProviderAPIs._clear_registry_instances()

from keystone.wsgi.api import application  # noqa: E402,F401
