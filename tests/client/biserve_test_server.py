"""What the Python tests in tests/client share: where the build put things,
the two bundled models, and biserve_server run on a loopback port.

Imported by python_client_test.py and open_inference_test.py, which run as
scripts: their folder, this module's, comes first on sys.path. Reads the
environment CTest sets for them:
  BISERVE_SOURCE_DIR   the repository
  BISERVE_BIN_DIR      build/bin
  BISERVE_SERVER       build/bin/biserve_server (else $BISERVE_BIN_DIR/...)
  BISERVE_EVAL         build/bin/biserve_eval (else $BISERVE_BIN_DIR/...)
  BISERVE_PYTHON_PATH  build/python: the generated stubs and biserve_client
  BISERVE_TEST_TMPDIR  where server logs and model repositories go
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time

SOURCE_DIR = os.path.abspath(os.environ.get(
    "BISERVE_SOURCE_DIR",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")))
BIN_DIR = os.environ.get("BISERVE_BIN_DIR",
                         os.path.join(SOURCE_DIR, "build", "bin"))
SERVER = os.environ.get("BISERVE_SERVER",
                        os.path.join(BIN_DIR, "biserve_server"))
EVAL = os.environ.get("BISERVE_EVAL", os.path.join(BIN_DIR, "biserve_eval"))
PYTHON_PATH = os.environ.get("BISERVE_PYTHON_PATH",
                             os.path.join(SOURCE_DIR, "build", "python"))
EXAMPLE_MODEL = os.path.join(SOURCE_DIR, "models", "example", "1",
                             "model.pbtxt")
BRACKETS_MODEL = os.path.join(SOURCE_DIR, "models", "brackets", "1",
                              "model.pb")

# From models/brackets/README.md.
VOCABULARY = " ()abcdefghijklmnopqrstuvwxyz"


def encode(text):
    """The brackets model's token ids for text."""
    return [1 + VOCABULARY.index(c) for c in text]


def require_built(*paths):
    """Raises unless every one of paths is an executable."""
    for path in paths:
        if not os.access(path, os.X_OK):
            raise RuntimeError("%s is missing: build first (cmake --build "
                               "build)" % path)


def temp_root(prefix):
    """A new folder under $BISERVE_TEST_TMPDIR (else the system's)."""
    root = os.environ.get("BISERVE_TEST_TMPDIR")
    if root:
        os.makedirs(root, exist_ok=True)
    return tempfile.mkdtemp(prefix=prefix, dir=root)


def make_repository(root):
    """A private copy of the two bundled models (only their model files)."""
    repo = os.path.join(root, "models")
    for source in (EXAMPLE_MODEL, BRACKETS_MODEL):
        version_dir = os.path.dirname(source)
        model = os.path.basename(os.path.dirname(version_dir))
        target = os.path.join(repo, model, "1")
        os.makedirs(target)
        shutil.copy(source, target)
    return repo


# The server never outlives the test: util-linux's setpriv sets
# PR_SET_PDEATHSIG and execs it (same pid). Not a preexec_fn: Python code
# run between fork and exec in a process with gRPC's threads can deadlock
# on a lock one of them held at the fork (the likely cause of one CI hang:
# python_client_test stuck for 300 s as it started its second server), and
# Popen then waits for the exec forever.
_DIE_WITH_PARENT = ["setpriv", "--pdeathsig", "KILL"]


class ServerProcess:
    """biserve_server on 127.0.0.1, port 0, its log in a file; more flags
    in extra_args."""

    def __init__(self, repository, log_path, extra_args=()):
        self.log_path = log_path
        self.port = None
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                _DIE_WITH_PARENT + [
                    SERVER, "--host=127.0.0.1", "--port=0",
                    "--metrics_port=0", "--model_repository=" + repository
                ] + list(extra_args),
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            self._wait_ready(timeout_s=60)
        except BaseException:
            self.kill()
            raise

    @classmethod
    def in_private_repository(cls, root, extra_args=()):
        """A server on a copy of the bundled models (make_repository) in
        root, its log root/server.log."""
        return cls(make_repository(root), os.path.join(root, "server.log"),
                   extra_args)

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def _wait_ready(self, timeout_s):
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            log = self.log()
            if " ready: " in log:
                marker = "listening on 127.0.0.1:"
                at = log.find(marker)
                if at < 0:
                    raise RuntimeError("no port in the server's log:\n" + log)
                digits = log[at + len(marker):].split(" ", 1)[0]
                self.port = int(digits)
                return
            if self.process.poll() is not None:
                raise RuntimeError(
                    "biserve_server exited with %d before it was ready; its "
                    "log:\n%s" % (self.process.returncode, log))
            time.sleep(0.02)
        raise RuntimeError("biserve_server not ready after %d s; its log:\n%s"
                           % (timeout_s, self.log()))

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def stop(self, timeout_s=60):
        """SIGTERM, then the exit code (None if it did not exit in time)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def stop_cleanly(self):
        """stop(), and raises unless the server stopped cleanly on SIGTERM:
        exit code 0 and 'stopped' in its log."""
        code = self.stop()
        log = self.log()
        if code != 0:
            raise AssertionError("biserve_server exited with %r after "
                                 "SIGTERM; its log:\n%s" % (code, log))
        if "stopped" not in log:
            raise AssertionError("no 'stopped' in the server's log:\n" + log)

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
