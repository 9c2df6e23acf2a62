"""gunicorn settings of the test Keystone (test-support/src/keystone.rs)."""

import ctypes
import signal

# keystone_wsgi.py sets up the deployment at import: do it once, in the master.
preload_app = True
# No ~/.gunicorn/gunicorn.ctl shared by every instance.
control_socket_disable = True
# Fail fast rather than hang a test.
timeout = 60
graceful_timeout = 2

PR_SET_PDEATHSIG = 1


def post_fork(server, worker):
    # The test process starts the master with PR_SET_PDEATHSIG; the workers
    # die with the master in the same way, so nothing outlives a test run.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
