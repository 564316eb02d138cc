"""Pairing, key derivation and frame signing, shared by the daemon and the platform.

Key scheme follows Opik's bridge: HKDF-SHA256 over a 32-byte activation key, the session id as
salt and info b"opik-bridge-v1". Unlike Opik we sign both directions, bind every signature to one
connection (both sides' nonces) and to a strictly increasing per-direction sequence number, so a
captured frame cannot be replayed on the same connection or on another one.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel

from opik_connect.link.frames import decode_frame
from opik_connect.private_files import write_private_json
from opik_connect.protocol import (
    PROTOCOL_VERSION,
    BridgeError,
    ErrorCode,
    Frame,
    FrameKind,
    canonical_json,
)

HKDF_INFO = b"opik-bridge-v1"
HANDSHAKE_TIMEOUT_S = 15.0
"""How long either side of a handshake waits for the other's next frame."""
PAIRING_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
"""No 0/O or 1/I/L: the code is read off one screen and typed into another."""


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    """RFC 5869 HKDF with SHA-256 (extract, then expand)."""
    if not salt:
        salt = b"\x00" * hashlib.sha256().digest_size
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    okm, block, counter = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


def new_activation_key() -> str:
    """32 random bytes, base64url without padding: the secret both sides derive keys from."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def decode_activation_key(activation_key: str) -> bytes:
    padded = activation_key + "=" * (-len(activation_key) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded)
    except ValueError as exc:
        raise BridgeError(ErrorCode.AUTH_FAILED, "activation key is not base64url") from exc
    if len(raw) != 32:
        raise BridgeError(ErrorCode.AUTH_FAILED, "activation key must be 32 bytes")
    return raw


def derive_link_key(activation_key: str, session_id: str) -> bytes:
    return hkdf_sha256(decode_activation_key(activation_key), session_id.encode(), HKDF_INFO)


def new_pairing_code() -> str:
    """Eight unambiguous characters, shown as XXXX-XXXX (about 40 bits, short-lived)."""
    chars = "".join(secrets.choice(PAIRING_ALPHABET) for _ in range(8))
    return f"{chars[:4]}-{chars[4:]}"


def normalize_pairing_code(code: str) -> str:
    chars = "".join(ch for ch in code.upper() if ch.isalnum())
    return f"{chars[:4]}-{chars[4:]}"


def new_nonce() -> str:
    return secrets.token_urlsafe(16)


def connection_id(daemon_nonce: str, platform_nonce: str) -> str:
    """Both nonces: neither side alone can make two connections share signatures."""
    return f"{daemon_nonce}.{platform_nonce}"


def hello_connection_id(daemon_nonce: str) -> str:
    """The Hello frame is signed before the platform's nonce exists."""
    return f"hello.{daemon_nonce}"


def frame_signature(
    key: bytes, conn_id: str, kind: str, type_: str, id_: str, seq: int, payload: dict[str, Any]
) -> str:
    return _sign(key, conn_id, kind, type_, id_, seq, canonical_json(payload))


_json_str = json.encoder.encode_basestring
"""How canonical_json spells a str (its encoder does not escape non-ASCII): the frame heads
below are spelled field by field with it, not through the encoder, on every frame."""


_KINDS = frozenset(get_args(FrameKind))
"""Frame kinds, spelled by json as they are (no escapes): put in the heads without escaping."""


def _sign(
    key: bytes, conn_id: str, kind: str, type_: str, id_: str, seq: int, payload_json: str
) -> str:
    """HMAC over canonical_json([kind, type_, id_, seq, conn_id, payload]), spelled from the
    payload's canonical JSON so a sender serialises the payload once for signing and sending."""
    if type(seq) is int:
        head = f'["{kind}",{_json_str(type_)},{_json_str(id_)},{seq},{_json_str(conn_id)}'
        if kind not in _KINDS:
            head = canonical_json([kind, type_, id_, seq, conn_id])[:-1]
    else:
        head = canonical_json([kind, type_, id_, seq, conn_id])[:-1]
    message = f"{head},{payload_json}]".encode()
    return hmac.digest(key, message, "sha256").hex()


class FrameSigner:
    """Signs outgoing frames and checks incoming ones for one authenticated connection.

    Each direction has its own counter; an incoming seq not above the last accepted one is a
    replay and fails with auth_failed.
    """

    def __init__(self, key: bytes, conn_id: str) -> None:
        self._key = key
        self.conn_id = conn_id
        self._out_seq = 0
        self._in_seq = 0

    def seal(self, kind: FrameKind, type_: str, id_: str, payload: dict[str, Any]) -> Frame:
        """Assign the next seq and sign. Callers send frames in the order they were sealed."""
        self._out_seq += 1
        sig = frame_signature(self._key, self.conn_id, kind, type_, id_, self._out_seq, payload)
        # Our own typed values: skip re-validation on the hot path.
        return Frame.model_construct(
            v=PROTOCOL_VERSION,
            kind=kind,
            type=type_,
            id=id_,
            seq=self._out_seq,
            payload=payload,
            sig=sig,
        )

    def seal_text(self, kind: FrameKind, type_: str, id_: str, payload: dict[str, Any]) -> str:
        """Like seal(), but straight to the frame's JSON text: the payload is serialised once,
        and those same canonical bytes are both signed and sent."""
        return self.seal_json(kind, type_, id_, canonical_json(payload))

    def seal_json(self, kind: FrameKind, type_: str, id_: str, payload_json: str) -> str:
        """seal_text for a payload already in canonical JSON (a buffered frame re-sent)."""
        self._out_seq += 1
        seq = self._out_seq
        sig = _sign(self._key, self.conn_id, kind, type_, id_, seq, payload_json)
        return f"{_text_head(PROTOCOL_VERSION, kind, type_, id_, seq, sig)}{payload_json}}}"

    def open(self, message: str | bytes) -> Frame:
        """Parse one websocket message and verify it (malformed_frame or auth_failed). A
        seal_text frame is checked over the payload bytes it carries, not serialised again."""
        frame = decode_frame(message)
        self._check_fresh(frame, message)
        return frame

    def verify(self, frame: Frame) -> None:
        """Raise BridgeError(auth_failed) unless the frame is signed for this link and fresh."""
        self._check_fresh(frame, None)

    def _check_fresh(self, frame: Frame, text: str | bytes | None) -> None:
        check_signature(self._key, self.conn_id, frame, text)
        if frame.seq <= self._in_seq:
            raise BridgeError(
                ErrorCode.AUTH_FAILED, f"replayed frame: seq {frame.seq} <= {self._in_seq}"
            )
        self._in_seq = frame.seq


def _text_head(v: int, kind: str, type_: str, id_: str, seq: int, sig: str) -> str:
    """What seal_text puts before the payload: the other fields, canonical, payload last."""
    if type(v) is int and type(seq) is int and kind in _KINDS:
        return (
            f'{{"id":{_json_str(id_)},"kind":"{kind}","seq":{seq},'
            f'"sig":{_json_str(sig)},"type":{_json_str(type_)},"v":{v},"payload":'
        )
    head = canonical_json({"v": v, "kind": kind, "type": type_, "id": id_, "seq": seq, "sig": sig})
    return f'{head[:-1]},"payload":'


def check_signature(
    key: bytes, conn_id: str, frame: Frame, text: str | bytes | None = None
) -> None:
    """Check the frame's HMAC over its kind, type, id, seq, conn_id and canonical payload.

    Fast path: a text laid out as seal_text lays it out (the parsed fields, canonical, then the
    payload, then the closing brace) is checked over its payload bytes as they are. A match
    proves those bytes are the canonical JSON a key holder signed, so they are the one payload
    member the frame was parsed with. Anything else is checked the long way.
    """
    if not frame.sig:
        raise BridgeError(ErrorCode.AUTH_FAILED, f"unsigned {frame.kind} frame {frame.type}")
    if isinstance(text, str) and text.endswith("}"):
        head = _text_head(frame.v, frame.kind, frame.type, frame.id, frame.seq, frame.sig)
        if text.startswith(head):
            payload_json = text[len(head) : -1]
            carried = _sign(key, conn_id, frame.kind, frame.type, frame.id, frame.seq, payload_json)
            if hmac.compare_digest(carried, frame.sig):
                return
    expected = frame_signature(
        key, conn_id, frame.kind, frame.type, frame.id, frame.seq, frame.payload
    )
    if not hmac.compare_digest(expected, frame.sig):
        raise BridgeError(ErrorCode.AUTH_FAILED, f"bad signature on {frame.kind} {frame.type}")


def sign_hello(key: bytes, daemon_nonce: str, id_: str, payload: dict[str, Any]) -> Frame:
    conn = hello_connection_id(daemon_nonce)
    sig = frame_signature(key, conn, "control", "Hello", id_, 0, payload)
    return Frame(kind="control", type="Hello", id=id_, seq=0, payload=payload, sig=sig)


class PairingRecord(BaseModel):
    """What both sides keep after pairing; the link key is derived, never stored or sent."""

    runner_id: str
    activation_key: str
    session_id: str
    runner_name: str = ""
    project: str = ""

    def link_key(self) -> bytes:
        return derive_link_key(self.activation_key, self.session_id)


class PairingStore:
    """Pairing records in one 0600 JSON file, keyed by a caller-chosen string.

    The daemon keys by platform URL and project root; the platform keys by runner id.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (ValueError, UnicodeDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> PairingRecord | None:
        raw = self._load().get(key)
        if raw is None:
            return None
        try:
            return PairingRecord.model_validate(raw)
        except ValueError:
            return None

    def all(self) -> dict[str, PairingRecord]:
        out: dict[str, PairingRecord] = {}
        for key, raw in self._load().items():
            try:
                out[key] = PairingRecord.model_validate(raw)
            except ValueError:
                continue
        return out

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Daemons of several projects share the file: serialize read-modify-write."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def put(self, key: str, record: PairingRecord) -> None:
        with self._locked():
            data = self._load()
            data[key] = record.model_dump()
            write_private_json(self.path, data)

    def remove(self, key: str) -> None:
        with self._locked():
            data = self._load()
            if data.pop(key, None) is not None:
                write_private_json(self.path, data)
