"""A loopback WS-Management (WinRM) endpoint standing in for a remote Windows computer.

Test code. It speaks the SOAP exchange the unmodified pywinrm client uses (Create shell,
Command, Send, Receive, Signal, Delete) over HTTP or HTTPS (a throwaway test CA) with Basic
authentication, and runs each command by mapping its executable name to a local program:
``powershell`` → the PowerShell stand-in answering from one simulated initiator. Like
Windows, a command run through cmd.exe (WINRS_SKIP_CMD_SHELL false) is refused when its
command line exceeds 8191 characters, a request envelope larger than ``MaxEnvelopeSizekb``
(500 by default) is refused with HTTP 413 (what WinRM answers: ansible.windows#620; the
empty body is a GUESS), and a Receive with no output within the request's OperationTimeout
is answered with the WS-Management timeout fault (2150858793).
"""

from __future__ import annotations

import base64
import datetime
import http.server
import ipaddress
import re
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from xml.sax.saxutils import escape

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
}
SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
CMD_LINE_LIMIT = 8191
MAX_ENVELOPE_SIZE_KB = 500  # WinRM's default MaxEnvelopeSizekb (Server 2012 and newer)


class _Command:
    """One running command: its process and what it has written so far."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.output = {"stdout": bytearray(), "stderr": bytearray()}
        self.changed = threading.Condition()
        self.exit_code: int | None = None
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        self._readers = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, "stdout"), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, "stderr"), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        threading.Thread(target=self._wait, daemon=True).start()

    @classmethod
    def finished(cls, stderr: bytes, exit_code: int) -> _Command:
        """A command that failed before starting (what cmd.exe reports)."""
        command = cls.__new__(cls)
        command.output = {"stdout": bytearray(), "stderr": bytearray(stderr)}
        command.changed = threading.Condition()
        command.exit_code = exit_code
        command.proc = None
        return command

    def _pump(self, stream, name: str) -> None:
        for chunk in iter(lambda: stream.read1(65536), b""):
            with self.changed:
                self.output[name] += chunk
                self.changed.notify_all()

    def _wait(self) -> None:
        code = self.proc.wait()
        for reader in self._readers:
            reader.join()
        with self.changed:
            self.exit_code = code
            self.changed.notify_all()

    def send(self, data: bytes, end: bool) -> None:
        if self.proc is None or self.proc.stdin.closed:
            return
        try:
            if data:
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
            if end:
                self.proc.stdin.close()
        except OSError:
            pass  # the process is gone; Receive reports how it ended

    def receive(self, wait: float) -> tuple[bytes, bytes, int | None] | None:
        """Output so far (and the exit code once done), or None if nothing within ``wait``."""
        deadline = time.monotonic() + wait
        with self.changed:
            while not (
                self.output["stdout"] or self.output["stderr"] or self.exit_code is not None
            ):
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.changed.wait(left)
            out, err = bytes(self.output["stdout"]), bytes(self.output["stderr"])
            self.output["stdout"].clear()
            self.output["stderr"].clear()
            return out, err, self.exit_code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()


def _make_tls(directory: Path, host: str) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for ``host``; returns (ca, cert, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "simhost test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (directory / "ca.pem", directory / "server.pem", directory / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


class WinRMEndpoint:
    """One simulated remote computer's WinRM service on ``host`` (a loopback address)."""

    def __init__(
        self,
        *,
        command_map: dict[str, list[str]],
        username: str,
        password: str,
        transport: str = "basic",
        tls: bool = False,
        env: dict[str, str] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        if transport != "basic":
            raise ValueError("this endpoint speaks Basic authentication only")
        self.command_map = {k.lower(): v for k, v in command_map.items()}
        self.transport = transport
        self.tls = tls
        self.host = host
        self.env = env or {}
        self._expected_auth = (
            "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        )
        self._shells: dict[str, dict[str, _Command]] = {}
        self._lock = threading.Lock()
        self._running = 0
        self._server: http.server.ThreadingHTTPServer | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="winrm-endpoint-")
        self.ca_cert_path: str | None = None
        self.port = 0
        self.response_delay = 0.0
        self.max_concurrent_commands = 0
        self.requests_seen: list[bytes] = []
        self.max_envelope_size_kb = MAX_ENVELOPE_SIZE_KB
        self.refused_envelopes = 0

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> WinRMEndpoint:
        handler = self._handler_class()
        self._server = http.server.ThreadingHTTPServer((self.host, self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        if self.tls:
            if self.ca_cert_path is None:
                ca, cert, key = _make_tls(Path(self._tmp.name), self.host)
                self.ca_cert_path = str(ca)
                self._cert = (str(cert), str(key))
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self._cert)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            for commands in self._shells.values():
                for command in commands.values():
                    command.kill()
            self._shells.clear()

    def __enter__(self) -> WinRMEndpoint:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        self._tmp.cleanup()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}/wsman"

    @property
    def down(self) -> bool:
        return self._server is None

    @down.setter
    def down(self, value: bool) -> None:
        if value and self._server is not None:
            self.stop()
        elif not value and self._server is None:
            self.start()

    @property
    def open_shells(self) -> int:
        with self._lock:
            return len(self._shells)

    def reset_stats(self) -> None:
        with self._lock:
            self.max_concurrent_commands = 0
            self.requests_seen.clear()

    # -- the protocol --------------------------------------------------------------------

    def _handler_class(self):
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args) -> None:  # never log (headers hold credentials)
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Authorization") != endpoint._expected_auth:
                    self._reply(401, b"", {"WWW-Authenticate": 'Basic realm="WSMAN"'})
                    return
                if len(body) > endpoint.max_envelope_size_kb * 1024:
                    with endpoint._lock:
                        endpoint.refused_envelopes += 1
                    self._reply(413, b"")
                    return
                if endpoint.response_delay:
                    time.sleep(endpoint.response_delay)
                with endpoint._lock:
                    endpoint.requests_seen.append(body)
                status, reply = endpoint._dispatch(body)
                self._reply(status, reply.encode("utf-8"))

            def _reply(self, status: int, payload: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/soap+xml;charset=UTF-8")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

        return Handler

    def _dispatch(self, body: bytes) -> tuple[int, str]:
        root = ET.fromstring(body)
        header = root.find("s:Header", NS)
        action = header.findtext("a:Action", "", NS)
        message_id = header.findtext("a:MessageID", "", NS)
        selector = header.find("w:SelectorSet/w:Selector[@Name='ShellId']", NS)
        shell_id = selector.text if selector is not None else None
        options = {o.get("Name"): o.text for o in header.findall("w:OptionSet/w:Option", NS)}
        timeout = _seconds(header.findtext("w:OperationTimeout", "PT20S", NS))
        verb = action.rsplit("/", 1)[-1]
        if verb == "Create":
            shell_id = str(uuid.uuid4()).upper()
            with self._lock:
                self._shells[shell_id] = {}
            return 200, _envelope(
                message_id,
                action + "Response",
                f"<x:ResourceCreated xmlns:x='{NS['a']}'><a:Address>{self.url}</a:Address>"
                "<a:ReferenceParameters><w:SelectorSet>"
                f"<w:Selector Name='ShellId'>{shell_id}</w:Selector>"
                "</w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>"
                f"<rsp:Shell><rsp:ShellId>{shell_id}</rsp:ShellId></rsp:Shell>",
            )
        commands = self._shells.get(shell_id)
        if commands is None:
            return 500, _fault(
                message_id,
                "2150858843",
                "The request for the Windows Remote Shell with ShellId was not found.",
            )
        body_node = root.find("s:Body", NS)
        if verb == "Command":
            line = body_node.find("rsp:CommandLine", NS)
            command_id = str(uuid.uuid4()).upper()
            commands[command_id] = self._start(
                line.findtext("rsp:Command", "", NS),
                line.findtext("rsp:Arguments", "", NS),
                skip_cmd_shell=(options.get("WINRS_SKIP_CMD_SHELL") or "FALSE").upper() == "TRUE",
            )
            return 200, _envelope(
                message_id,
                f"{SHELL}/CommandResponse",
                f"<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId></rsp:CommandResponse>",
            )
        if verb == "Send":
            for stream in body_node.findall("rsp:Send/rsp:Stream", NS):
                command = commands.get(stream.get("CommandId"))
                if command is not None:
                    data = base64.b64decode(stream.text or "")
                    command.send(data, (stream.get("End") or "").lower() == "true")
            return 200, _envelope(message_id, f"{SHELL}/SendResponse", "<rsp:SendResponse/>")
        if verb == "Receive":
            wanted = body_node.find("rsp:Receive/rsp:DesiredStream", NS)
            command_id = wanted.get("CommandId")
            command = commands.get(command_id)
            got = command.receive(min(timeout, 60)) if command else (b"", b"", 1)
            if got is None:
                return 500, _fault(
                    message_id,
                    "2150858793",
                    "The WS-Management service cannot complete the operation within the time "
                    "specified in OperationTimeout.",
                )
            out, err, code = got
            streams = "".join(
                f"<rsp:Stream Name='{name}' CommandId='{command_id}'>{base64.b64encode(data).decode()}</rsp:Stream>"
                for name, data in (("stdout", out), ("stderr", err))
                if data
            )
            if code is None:
                state = f"<rsp:CommandState CommandId='{command_id}' State='{SHELL}/CommandState/Running'/>"
            else:
                self._finished(command)
                state = (
                    f"<rsp:CommandState CommandId='{command_id}' State='{SHELL}/CommandState/Done'>"
                    f"<rsp:ExitCode>{code}</rsp:ExitCode></rsp:CommandState>"
                )
            return 200, _envelope(
                message_id,
                f"{SHELL}/ReceiveResponse",
                f"<rsp:ReceiveResponse>{streams}{state}</rsp:ReceiveResponse>",
            )
        if verb == "Signal":
            command_id = body_node.find("rsp:Signal", NS).get("CommandId")
            command = commands.pop(command_id, None)
            if command is not None:
                command.kill()
                self._finished(command)
            return 200, _envelope(message_id, f"{SHELL}/SignalResponse", "<rsp:SignalResponse/>")
        if verb == "Delete":
            with self._lock:
                for command in self._shells.pop(shell_id, {}).values():
                    command.kill()
                    self._finished(command)
            return 200, _envelope(message_id, action + "Response", "")
        return 500, _fault(message_id, "2150858817", f"unsupported action {escape(action)}")

    def _start(self, executable: str, arguments: str, skip_cmd_shell: bool) -> _Command:
        if not skip_cmd_shell and len(f"{executable} {arguments}") > CMD_LINE_LIMIT:
            return _Command.finished(b"The command line is too long.\r\n", 1)
        name = re.sub(r"\.exe$", "", Path(executable.replace("\\", "/")).name.lower())
        program = self.command_map.get(name)
        if program is None:
            return _Command.finished(
                f"'{executable}' is not recognized as an internal or external command,\r\n"
                "operable program or batch file.\r\n".encode(),
                1,
            )
        import os

        command = _Command([*program, *arguments.split()], {**os.environ, **self.env})
        with self._lock:
            self._running += 1
            self.max_concurrent_commands = max(self.max_concurrent_commands, self._running)
            command.counted = True
        return command

    def _finished(self, command: _Command) -> None:
        with self._lock:
            if getattr(command, "counted", False):
                command.counted = False
                self._running -= 1


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"PT([\d.]+)S", duration or "")
    return float(match.group(1)) if match else 20.0


def _envelope(relates_to: str, action: str, body: str) -> str:
    return (
        f"<s:Envelope xmlns:s='{NS['s']}' xmlns:a='{NS['a']}' xmlns:w='{NS['w']}' "
        f"xmlns:rsp='{NS['rsp']}'><s:Header><a:Action>{action}</a:Action>"
        f"<a:MessageID>uuid:{uuid.uuid4()}</a:MessageID>"
        f"<a:RelatesTo>{relates_to}</a:RelatesTo></s:Header><s:Body>{body}</s:Body></s:Envelope>"
    )


def _fault(relates_to: str, code: str, text: str) -> str:
    return _envelope(
        relates_to,
        "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault",
        "<s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode>"
        "<s:Value>w:TimedOut</s:Value></s:Subcode></s:Code>"
        f"<s:Reason><s:Text xml:lang='en-US'>{escape(text)}</s:Text></s:Reason><s:Detail>"
        "<f:WSManFault xmlns:f='http://schemas.microsoft.com/wbem/wsman/1/wsmanfault' "
        f"Code='{code}' Machine='simhost'><f:Message>{escape(text)}</f:Message></f:WSManFault>"
        "</s:Detail></s:Fault>",
    )
