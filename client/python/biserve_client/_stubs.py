"""Finds and imports the gRPC stubs the build generates into <build>/python.

The stubs are the modules biserve.v1.{model,inference}_pb2(_grpc) and
biserve_health.v1.health_pb2(_grpc) (grpc.health.v1 compiled under another
module path, so that it does not collide with grpcio's own `grpc` package; see
client/python/CMakeLists.txt). They are used as they are when importable
(PYTHONPATH=build/python); otherwise the first of these folders that holds
them is appended to sys.path:

  1. $BISERVE_PYTHON_STUBS
  2. the folder this package sits in (the copy the build puts in build/python)
  3. <repository>/build/python (this package run from client/python/)
"""

import importlib
import os
import sys

try:
    import grpc  # noqa: F401  (checked here for a clearer message)
    import google.protobuf  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the machine
    raise ImportError(
        "biserve_client needs grpcio and protobuf; on Debian 12 use "
        "/usr/bin/python3 with python3-grpcio and python3-protobuf "
        "(another python3 first on PATH may lack them): %s" % error
    ) from error

_MODULES = (
    "biserve.v1.model_pb2",
    "biserve.v1.inference_pb2",
    "biserve.v1.inference_pb2_grpc",
    "biserve_health.v1.health_pb2",
    "biserve_health.v1.health_pb2_grpc",
)


def _candidates():
    here = os.path.dirname(os.path.abspath(__file__))
    env = os.environ.get("BISERVE_PYTHON_STUBS")
    if env:
        yield os.path.abspath(env)
    yield os.path.dirname(here)
    yield os.path.normpath(os.path.join(here, "..", "..", "..", "build", "python"))


def _has_stubs(folder):
    return os.path.isfile(
        os.path.join(folder, "biserve", "v1", "inference_pb2.py")
    ) and os.path.isfile(
        os.path.join(folder, "biserve_health", "v1", "health_pb2.py")
    )


def _load():
    try:
        return [importlib.import_module(name) for name in _MODULES]
    except ImportError:
        pass
    searched = []
    for folder in _candidates():
        searched.append(folder)
        if _has_stubs(folder):
            if folder not in sys.path:
                sys.path.append(folder)
            importlib.invalidate_caches()
            return [importlib.import_module(name) for name in _MODULES]
    raise ImportError(
        "biserve_client: the generated stubs (biserve.v1.inference_pb2 and "
        "biserve_health.v1.health_pb2) were not found. Build the project "
        "(scripts/build.sh), then put build/python on PYTHONPATH or set "
        "BISERVE_PYTHON_STUBS to it. Searched: " + ", ".join(searched)
    )


(
    model_pb2,
    inference_pb2,
    inference_pb2_grpc,
    health_pb2,
    health_pb2_grpc,
) = _load()
