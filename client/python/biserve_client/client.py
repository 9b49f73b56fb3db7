"""A client of biserve.v1.InferenceService and grpc.health.v1.Health.

Requests are built from plain Python lists and answers come back as plain
Python values (nested lists shaped like the tensors, dicts), so callers never
touch protobuf messages.
"""

import dataclasses
import numbers
from collections.abc import Mapping
from typing import Any, Iterable, Iterator, List, Optional

import grpc

from . import _stubs

_pb = _stubs.inference_pb2
_model_pb = _stubs.model_pb2

_OUTPUTS = {
    "merged": _pb.OUTPUT_SELECTION_MERGED,
    "directions": _pb.OUTPUT_SELECTION_DIRECTIONS,
    "both": _pb.OUTPUT_SELECTION_BOTH,
}

_STATUS_BY_VALUE = {code.value[0]: code for code in grpc.StatusCode}

# Sentinel: "use the client's timeout".
_DEFAULT = object()


class BiserveError(Exception):
    """A failed call: `code` is the gRPC status code's name ("NOT_FOUND",
    "INVALID_ARGUMENT", "UNAVAILABLE", ...), `message` the server's message,
    `status` the grpc.StatusCode (None when unknown)."""

    def __init__(self, code: str, message: str,
                 status: Optional[grpc.StatusCode] = None):
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message
        self.status = status

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> "BiserveError":
        status = error.code() if hasattr(error, "code") else None
        details = error.details() if hasattr(error, "details") else str(error)
        name = status.name if status is not None else "UNKNOWN"
        return cls(name, details or "", status)

    @classmethod
    def from_status(cls, code: int, message: str) -> "BiserveError":
        status = _STATUS_BY_VALUE.get(code)
        name = status.name if status is not None else "CODE_%d" % code
        return cls(name, message, status)


class InvalidInputError(BiserveError, ValueError):
    """Input the client cannot encode (ragged steps, a float token id, an
    unknown key); raised before anything is sent. Code INVALID_ARGUMENT."""

    def __init__(self, message: str):
        super().__init__("INVALID_ARGUMENT", message,
                         grpc.StatusCode.INVALID_ARGUMENT)


@dataclasses.dataclass
class LayerStates:
    """Final states of one Bidirectional layer, in Keras' order: forward h,
    forward c (LSTM), backward h, backward c (LSTM); each a list of floats."""
    layer: str
    states: List[Any]


@dataclasses.dataclass
class SequenceResult:
    """The answer for one sequence. `output` ([length, D] nested lists, or
    [D]), `forward` and `backward` ([length, units] or [units]) are None when
    not returned; `states` is empty unless states were asked for."""
    output: Optional[List[Any]] = None
    forward: Optional[List[Any]] = None
    backward: Optional[List[Any]] = None
    states: List[LayerStates] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class PredictResult:
    """The answer to one request: one SequenceResult per request sequence,
    in request order. On a stream, `error` is set (and `sequences` empty)
    when this request failed."""
    model_name: str
    model_version: int
    request_id: str
    sequences: List[SequenceResult]
    error: Optional[BiserveError] = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def __len__(self) -> int:
        return len(self.sequences)

    def __iter__(self) -> Iterator[SequenceResult]:
        return iter(self.sequences)

    def __getitem__(self, index: int) -> SequenceResult:
        return self.sequences[index]

    def to_dict(self) -> dict:
        result = {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "request_id": self.request_id,
            "sequences": [dataclasses.asdict(s) for s in self.sequences],
        }
        if self.error is not None:
            result["error"] = {"code": self.error.code,
                               "message": self.error.message}
        return result


# --- requests -----------------------------------------------------------------


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _as_list(value, path: str):
    if hasattr(value, "tolist"):  # numpy arrays, without needing numpy
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise InvalidInputError("%s: expected a list, got %s"
                                % (path, type(value).__name__))
    return value


def _set_features(message, steps, path: str) -> None:
    """Steps as [[f, ...], ...] (length = number of steps) or already flat."""
    steps = _as_list(steps, path)
    if steps and not _is_number(steps[0]):
        width = None
        flat = []
        for t, step in enumerate(steps):
            step = _as_list(step, "%s[%d]" % (path, t))
            if width is None:
                width = len(step)
            elif len(step) != width:
                raise InvalidInputError(
                    "%s[%d]: %d values, but step 0 has %d"
                    % (path, t, len(step), width))
            flat.extend(step)
        if not message.length:
            message.length = len(steps)
        steps = flat
    try:
        message.features.extend(steps)
    except (TypeError, ValueError) as error:
        raise InvalidInputError("%s: %s" % (path, error)) from None


def _set_token_ids(message, ids, path: str) -> None:
    ids = _as_list(ids, path)
    for t, value in enumerate(ids):
        if not _is_integer(value):
            raise InvalidInputError("%s[%d]: token ids are integers, got %r"
                                    % (path, t, value))
    try:
        message.token_ids.extend(ids)
    except (TypeError, ValueError) as error:
        raise InvalidInputError("%s: %s" % (path, error)) from None


def _set_initial_state(message, states, path: str) -> None:
    for s, state in enumerate(_as_list(states, path)):
        values = _as_list(state, "%s[%d]" % (path, s))
        try:
            message.initial_state.add(shape=[len(values)], values=values)
        except (TypeError, ValueError) as error:
            raise InvalidInputError("%s[%d]: %s" % (path, s, error)) from None


_SEQUENCE_KEYS = {"features", "token_ids", "initial_state", "length"}


def _fill_sequence(message, sequence, index: int) -> None:
    path = "sequences[%d]" % index
    if isinstance(sequence, Mapping):
        unknown = set(sequence) - _SEQUENCE_KEYS
        if unknown:
            raise InvalidInputError(
                "%s: unknown keys %s (known: %s)"
                % (path, sorted(unknown), sorted(_SEQUENCE_KEYS)))
        if sequence.get("length"):
            message.length = int(sequence["length"])
        if sequence.get("features") is not None:
            _set_features(message, sequence["features"], path + ".features")
        if sequence.get("token_ids") is not None:
            _set_token_ids(message, sequence["token_ids"], path + ".token_ids")
        if sequence.get("initial_state") is not None:
            _set_initial_state(message, sequence["initial_state"],
                               path + ".initial_state")
        return
    sequence = _as_list(sequence, path)
    if not sequence:
        return  # an empty sequence: the server says what is wrong with it
    if _is_integer(sequence[0]):
        _set_token_ids(message, sequence, path + ".token_ids")
    elif _is_number(sequence[0]):
        raise InvalidInputError(
            "%s: a flat list holds token ids (integers); give features as a "
            "list of steps, each a list of floats" % path)
    else:
        _set_features(message, sequence, path + ".features")


def build_request(model: str, sequences, version: int = 0,
                  outputs: str = "merged", states: bool = False,
                  request_id: str = "") -> "_pb.PredictRequest":
    """The PredictRequest message for predict()'s arguments."""
    if outputs not in _OUTPUTS:
        raise InvalidInputError("outputs must be one of %s, not %r"
                                % (sorted(_OUTPUTS), outputs))
    request = _pb.PredictRequest(
        model_name=model, model_version=int(version),
        outputs=_OUTPUTS[outputs], return_states=bool(states),
        request_id=request_id)
    for index, sequence in enumerate(_as_list(sequences, "sequences")):
        _fill_sequence(request.sequences.add(), sequence, index)
    return request


_REQUEST_KEYS = {"model", "sequences", "version", "outputs", "states",
                 "request_id"}


def _stream_request(item) -> "_pb.PredictRequest":
    if isinstance(item, _pb.PredictRequest):
        return item
    if not isinstance(item, Mapping):
        raise InvalidInputError(
            "predict_stream takes dicts with the arguments of predict() "
            "(model, sequences, ...) or PredictRequest messages, not %s"
            % type(item).__name__)
    unknown = set(item) - _REQUEST_KEYS
    if unknown:
        raise InvalidInputError("request: unknown keys %s (known: %s)"
                                % (sorted(unknown), sorted(_REQUEST_KEYS)))
    return build_request(**item)


# --- responses ----------------------------------------------------------------


def _nest(values, shape):
    if len(shape) <= 1:
        return list(values)
    step = 1
    for size in shape[1:]:
        step *= size
    return [_nest(values[i * step:(i + 1) * step], shape[1:])
            for i in range(shape[0])]


def tensor_to_list(tensor) -> list:
    """A biserve.v1.Tensor as nested lists shaped like it (row-major)."""
    return _nest(list(tensor.values), list(tensor.shape))


def _result(response) -> PredictResult:
    error = None
    if response.HasField("error") and response.error.code != 0:
        error = BiserveError.from_status(response.error.code,
                                         response.error.message)
    sequences = []
    for sequence in response.sequences:
        sequences.append(SequenceResult(
            output=(tensor_to_list(sequence.output)
                    if sequence.HasField("output") else None),
            forward=(tensor_to_list(sequence.forward)
                     if sequence.HasField("forward") else None),
            backward=(tensor_to_list(sequence.backward)
                      if sequence.HasField("backward") else None),
            states=[LayerStates(layer=s.layer,
                                states=[tensor_to_list(t) for t in s.states])
                    for s in sequence.states]))
    return PredictResult(model_name=response.model_name,
                         model_version=response.model_version,
                         request_id=response.request_id,
                         sequences=sequences, error=error)


def to_plain(message) -> dict:
    """Any message as a dict of plain values: every field (defaults
    included), enums by name, int64 as int (unlike json_format)."""
    plain = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if field.message_type is not None:
            convert = to_plain
        elif field.enum_type is not None:
            names = field.enum_type.values_by_number

            def convert(number, names=names):
                return names[number].name if number in names else number
        else:
            def convert(v):
                return v
        if field.label == field.LABEL_REPEATED:
            plain[field.name] = [convert(v) for v in value]
        else:
            plain[field.name] = convert(value)
    return plain


# --- the client ---------------------------------------------------------------


class Client:
    """A connection to one biserve server.

    address: "host:port". timeout_s: deadline of every call (None: none;
    predict_stream has none unless given). max_message_bytes: largest
    message received (and sent); None means no limit for received messages,
    since whole batches' outputs easily exceed gRPC's 4 MB default.
    tls / root_cert_path: a TLS channel, trusting the PEM file at
    root_cert_path (or the system's roots when None).
    client_cert_path / client_key_path: mTLS, presenting this PEM
    certificate chain and its PEM private key (both or neither; they imply
    TLS). server_name: the name the server's certificate must carry instead
    of the host in `address` (connecting by IP address; implies TLS).
    options: more gRPC channel arguments, as (name, value) pairs.
    Files are read here: a missing one raises OSError, a client certificate
    without its key ValueError. A failed handshake shows on the first call
    (BiserveError UNAVAILABLE).
    """

    def __init__(self, address: str, timeout_s: Optional[float] = 60.0,
                 max_message_bytes: Optional[int] = None, tls: bool = False,
                 root_cert_path: Optional[str] = None,
                 client_cert_path: Optional[str] = None,
                 client_key_path: Optional[str] = None,
                 server_name: Optional[str] = None, options=()):
        self.address = address
        self.timeout_s = timeout_s
        if bool(client_cert_path) != bool(client_key_path):
            raise ValueError("client_cert_path and client_key_path go "
                             "together (a client certificate needs its key)")
        channel_options = [("grpc.max_receive_message_length",
                            max_message_bytes if max_message_bytes else -1)]
        if max_message_bytes:
            channel_options.append(("grpc.max_send_message_length",
                                    max_message_bytes))
        if server_name:
            channel_options.append(("grpc.ssl_target_name_override",
                                    server_name))
        channel_options.extend(options)
        if tls or root_cert_path or client_cert_path or server_name:
            def read(path):
                if not path:
                    return None
                with open(path, "rb") as f:
                    return f.read()
            credentials = grpc.ssl_channel_credentials(
                root_certificates=read(root_cert_path),
                private_key=read(client_key_path),
                certificate_chain=read(client_cert_path))
            self.channel = grpc.secure_channel(address, credentials,
                                               channel_options)
        else:
            self.channel = grpc.insecure_channel(address, channel_options)
        self.stub = _stubs.inference_pb2_grpc.InferenceServiceStub(self.channel)
        self.health_stub = _stubs.health_pb2_grpc.HealthStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _timeout(self, timeout_s):
        return self.timeout_s if timeout_s is _DEFAULT else timeout_s

    def _call(self, method, request, timeout_s):
        try:
            return method(request, timeout=self._timeout(timeout_s))
        except grpc.RpcError as error:
            raise BiserveError.from_rpc_error(error) from None

    def predict(self, model: str, sequences, version: int = 0,
                outputs: str = "merged", states: bool = False,
                request_id: str = "", timeout_s=_DEFAULT) -> PredictResult:
        """Evaluates a batch of sequences. Each sequence is a list of steps,
        each a list of floats (feature models); a list of ints (token-id
        models); or a dict with "features" or "token_ids", and optionally
        "initial_state" (a list of vectors: forward h, forward c for LSTM,
        backward h, backward c) and "length". outputs: "merged" (the model's
        output), "directions" (the last Bidirectional layer's forward and
        backward outputs) or "both". states: also return every
        Bidirectional layer's final states."""
        request = build_request(model, sequences, version, outputs, states,
                                request_id)
        return _result(self._call(self.stub.Predict, request, timeout_s))

    def predict_stream(self, requests: Iterable, timeout_s=None
                       ) -> Iterator[PredictResult]:
        """Sends many requests over one stream and yields each answer as it
        comes (completion order: match them by request_id). Requests are
        dicts with predict()'s arguments ({"model": ..., "sequences": ...,
        "request_id": ...}) or PredictRequest messages, from any iterable
        (it is read as the stream goes). A request that fails is answered
        with a result whose `error` is set; a failure of the whole stream
        raises BiserveError."""
        failure = []
        holder = {}

        # gRPC reads this generator on its own thread and only logs what it
        # raises; keep the error for the caller and cancel the call instead.
        def messages():
            try:
                for item in requests:
                    yield _stream_request(item)
            except Exception as error:
                failure.append(error)
                if "call" in holder:
                    holder["call"].cancel()

        call = self.stub.PredictStream(messages(), timeout=timeout_s)
        holder["call"] = call
        if failure:
            call.cancel()
        try:
            for response in call:
                yield _result(response)
        except grpc.RpcError as error:
            if failure:
                raise failure[0] from None
            raise BiserveError.from_rpc_error(error) from None
        finally:
            call.cancel()  # no-op once the stream has ended
        if failure:
            raise failure[0]

    def metadata(self, model: str, version: int = 0,
                 timeout_s=_DEFAULT) -> dict:
        """GetModelMetadata as a dict: model_name, model_version,
        available_versions, inputs and outputs ({name, dtype, shape (-1 for
        the time axis), description}), layers, batching, limits."""
        request = _pb.GetModelMetadataRequest(model_name=model,
                                              model_version=int(version))
        return to_plain(self._call(self.stub.GetModelMetadata, request,
                                   timeout_s))

    def list_models(self, timeout_s=_DEFAULT) -> List[dict]:
        """Every model in the repository: dicts with name, version_policy,
        versions ([{version, state ("STATE_AVAILABLE", ...), reason,
        since_unix_ms}]) and config_error."""
        response = self._call(self.stub.ListModels, _pb.ListModelsRequest(),
                              timeout_s)
        return to_plain(response)["models"]

    def health(self, service: str = "", timeout_s=_DEFAULT) -> str:
        """The standard health check: "SERVING" or "NOT_SERVING" for the
        server ("") or one model (its name). An unknown service raises
        BiserveError NOT_FOUND."""
        health_pb2 = _stubs.health_pb2
        response = self._call(self.health_stub.Check,
                              health_pb2.HealthCheckRequest(service=service),
                              timeout_s)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(
            response.status)
