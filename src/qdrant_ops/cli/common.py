"""What every command group shares: exit codes, argument types, the connection options and the one
way to build a client from them, the one way to log to stderr (text or --json events) and to
print a result."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from qdrant_ops import silences
from qdrant_ops.backup import job
from qdrant_ops.client import ClusterClient
from qdrant_ops.cluster import zones
from qdrant_ops.errors import ConfigError, QdrantOpsError
from qdrant_ops.keyfile import check_key, read_key_file
from qdrant_ops.progress import ProgressLine

# Exit codes, the same for every command (printed by --help, listed in docs/cli.md).
EXIT_OK = 0


EXIT_ATTENTION = 1  # the command worked and found something to act on: unhealthy, incomplete, drift


EXIT_ERROR = 2  # the command failed; the last stderr line says what and how to fix it


EXIT_USAGE = 64  # bad command line (BSD sysexits EX_USAGE)


EXIT_INTERRUPTED = 130  # Ctrl-C / SIGINT


EXIT_CODES = """exit codes:
  0    done; healthy, complete, nothing to change
  1    done, and something needs attention: a replica unhealthy, a backup set incomplete,
       a point not found, collections differ from the spec (apply --dry-run --exit-code)
  2    error: the last line on stderr says what failed and the fix (with --json also on stdout);
       also an internal error (a bug), in one line (qdrant-ops --debug ... prints its traceback)
  64   bad command line
  130  interrupted"""


class UsageError(QdrantOpsError):
    """Options that do not go together: exit EXIT_USAGE, like argparse's own refusals."""


class Parser(argparse.ArgumentParser):
    """Usage errors exit 64, not argparse's 2, so scripts can tell them from failures."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Adds "(default: X)" to an option's help unless it says its default already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "default" in text
            or action.default in (None, False, argparse.SUPPRESS)
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


class SubParser(Parser):
    def __init__(self, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(**kwargs)


def emit_event(event: dict) -> None:
    """One JSON event per stderr line, written whole (worker threads emit too)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    sys.stderr.write(json.dumps({"time": stamp, **event}, sort_keys=True) + "\n")
    sys.stderr.flush()


def event_log(args: argparse.Namespace) -> Callable[[str], None]:
    """Where a command's log and progress lines go: stderr as text; with --json as a stream of
    events on stderr, one JSON object per line ({"event": "log", "message": ...} or
    {"event": "progress", "operation": ..., "bytes": ..., ...}), while stdout keeps the one result
    document, so a program follows the work on one stream and reads the outcome on the other."""
    as_json = getattr(args, "json", False)

    def log(line: str) -> None:
        if as_json:
            emit_event(
                {"event": "progress", **line.fields}
                if isinstance(line, ProgressLine)
                else {"event": "log", "message": str(line)}
            )
        else:
            sys.stderr.write(f"{line}\n")
            sys.stderr.flush()

    return log


def report_error(args: argparse.Namespace, message: str, exit_code: int = EXIT_ERROR) -> None:
    """The last stderr line says what failed (a JSON event with --json), and with --json stdout
    says it too for a program that reads only the result."""
    if getattr(args, "json", False):
        emit_event({"event": "error", "message": message, "exit_code": exit_code})
        print(json.dumps({"error": message, "exit_code": exit_code}))
    else:
        print(f"qdrant-ops: error: {message}", file=sys.stderr)


def read_key(path: str | None, option: str) -> str | None:
    if not path:
        return None
    return read_key_file(path, option)


def seconds(text: str) -> float:
    """An argparse type: a finite number of seconds above 0 (at most a week)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 7 * 86400:  # false for nan too
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds between 0 and 604800")
    return value


def writable_dir(text: str) -> str:
    """An argparse type: an existing directory this user may write to."""
    if not os.path.isdir(text) or not os.access(text, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text!r} is not a directory this user can write to")
    return text


def metrics_dir(text: str) -> str:
    """An argparse type: a writable directory, or one that can be made in a writable directory."""
    writable_dir(text if os.path.exists(text) else os.path.dirname(os.path.abspath(text)))
    return text


def output_file(text: str) -> str:
    """An argparse type: a file whose directory exists and is writable (checked before any work)."""
    writable_dir(os.path.dirname(os.path.abspath(text)))
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a directory, not a file")
    return text


def peer_id(text: str) -> int:
    """An argparse type: Qdrant peer ids are unsigned 64-bit integers."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**64:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a peer id (an unsigned integer, see cluster status)"
        )
    return value


def api_key_from(args: argparse.Namespace) -> str | None:
    if args.api_key_file:
        return read_key(args.api_key_file, "--api-key-file")
    key = os.environ.get("QDRANT_API_KEY")
    return check_key(key, "the environment variable QDRANT_API_KEY") if key else None


# Where the backup sets are, from the environment (a workstation needs no backup.yml); AWS's own
# variables (AWS_REGION, AWS_ENDPOINT_URL_S3, credentials) are read by boto3 itself.
REPOSITORY_ENV = {
    "bucket": "QDRANT_OPS_S3_BUCKET",
    "prefix": "QDRANT_OPS_S3_PREFIX",
    "cluster": "QDRANT_OPS_CLUSTER",
}


def backup_config(args: argparse.Namespace) -> job.BackupConfig:
    """The backup config file (--config, else the default path when it exists) with the repository
    given by flags (--bucket, --prefix, --cluster, --region, --endpoint-url) or the environment over
    it; without a file, those alone."""
    given = {name: getattr(args, name, None) or os.environ.get(env) for name, env in REPOSITORY_ENV.items()}
    given |= {"region": getattr(args, "region", None), "endpoint_url": getattr(args, "endpoint_url", None)}
    given = {name: value for name, value in given.items() if value}
    path = args.config or job.DEFAULT_PATH
    if args.config or not given or Path(path).exists():
        data, source = job.read_file(path), path
    elif not {"bucket", "cluster"} <= set(given):
        raise ConfigError(
            f"no backup config at {path} and no repository given: pass --bucket and --cluster (or set "
            f"{REPOSITORY_ENV['bucket']} and {REPOSITORY_ENV['cluster']}), or --config FILE"
        )
    else:
        data, source = {}, "the command line"
    if "cluster" in given:
        data["cluster"] = given.pop("cluster")
    data["s3"] = {**(data.get("s3") or {}), **given}
    return job.from_dict(data, source)


def make_client(args: argparse.Namespace) -> ClusterClient:
    urls = args.url or [u for u in os.environ.get("QDRANT_URL", "").split(",") if u.strip()]
    if not urls:
        raise ConfigError("no Qdrant URL: pass --url http://node:6333 (repeatable) or set QDRANT_URL")
    return ClusterClient(
        urls, api_key_from(args), verify=not args.insecure, ca_file=args.ca_file, timeout=args.timeout
    )


def emit_result(args: argparse.Namespace, data, table: str) -> None:
    """The result: a table for people, or with --json the document on stdout, also ending the
    event stream on stderr (a program that follows the events needs no second stream)."""
    if args.json:
        emit_event({"event": "summary", "result": data})
    print(json.dumps(data, indent=2, sort_keys=True) if args.json else table)


def read_zones(
    args: argparse.Namespace, client: ClusterClient, *, skip_silent: bool = False
) -> dict[int, str]:
    """--zones-file (a mapping of peer id or node URL to zone) and --zone PEER_OR_URL=ZONE, resolved
    to peer ids; empty when neither is given (every peer a zone of its own). With `skip_silent`, a
    node URL nobody answers at is left out (a status must work while a node is down)."""
    spec: dict[str, str] = {}
    if args.zones_file:
        try:
            data = yaml.safe_load(Path(args.zones_file).read_text())
        except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the zones file {args.zones_file}: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{args.zones_file}: expected a mapping of peer id or node URL to zone")
        spec.update({str(k): v for k, v in data.items()})
    for item in args.zone or []:
        key, sep, zone = item.rpartition("=")  # a URL may hold '=', a zone name does not
        if not sep or not key or not zone:
            raise ConfigError(f"--zone must look like PEER_OR_URL=ZONE, got {item!r}")
        if spec.setdefault(key, zone) != zone:
            raise ConfigError(f"{key} is given two zones: {spec[key]} and {zone}")
    return zones.resolve(client, spec, skip_silent=skip_silent)


def connection_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection")
    group.add_argument(
        "--url", action="append", help="node URL, repeatable (default: $QDRANT_URL, comma-separated)"
    )
    group.add_argument("--api-key-file", help="file holding the API key (default: $QDRANT_API_KEY)")
    group.add_argument("--ca-file", help="CA bundle to verify the nodes' TLS certificates")
    flag(group, "--insecure", "do not verify TLS certificates")
    group.add_argument("--timeout", type=seconds, default=30.0, help="seconds per request (default 30)")
    flag(common, "--json", "machine-readable output")
    return common


def flag(parser: argparse.ArgumentParser, name: str, help: str) -> None:
    parser.add_argument(name, action="store_true", help=help)


def zone_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group(
        "availability zones", "peers without a zone count as zones of their own (placement by counts only)"
    )
    group.add_argument(
        "--zone", action="append", metavar="PEER_OR_URL=ZONE", help="a peer's zone, repeatable"
    )
    group.add_argument(
        "--zones-file", metavar="FILE", help="YAML/JSON mapping of peer id or node URL to zone"
    )
    return common


def config_options() -> argparse.ArgumentParser:
    config_opts = argparse.ArgumentParser(add_help=False)
    config_opts.add_argument(
        "--config", help=f"backup config (default {job.DEFAULT_PATH}; optional with --bucket and --cluster)"
    )
    repo = config_opts.add_argument_group("repository (over the config file)")
    repo.add_argument("--bucket", help=f"S3 bucket of the sets (or ${REPOSITORY_ENV['bucket']})")
    repo.add_argument("--prefix", help=f"key prefix (default qdrant-backups; or ${REPOSITORY_ENV['prefix']})")
    repo.add_argument("--cluster", help=f"cluster name in the keys (or ${REPOSITORY_ENV['cluster']})")
    repo.add_argument("--region", help="S3 region (or $AWS_REGION)")
    repo.add_argument("--endpoint-url", help="S3-compatible endpoint (or $AWS_ENDPOINT_URL_S3)")
    flag(config_opts, "--json", "machine-readable output")
    return config_opts


# The planned-work lock of a command run by hand: the same Alertmanager silence the playbooks take
# (playbooks/tasks/silence.yml), which the healer reads as "planned work holds the cluster".
LOCK_ENV = {
    "alertmanager_url": "QDRANT_OPS_ALERTMANAGER_URL",
    "alertmanager_user": "QDRANT_OPS_ALERTMANAGER_USER",
    "alertmanager_password_file": "QDRANT_OPS_ALERTMANAGER_PASSWORD_FILE",
    "alertmanager_ca_file": "QDRANT_OPS_ALERTMANAGER_CA_FILE",
    "lock_cluster": "QDRANT_OPS_CLUSTER",
}


def lock_options(cluster_fallback: str = "") -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group(
        "planned-work lock",
        "While the command changes replicas it holds the cluster's planned-work silence in\n"
        "Alertmanager, as the playbooks do: the healer stands back, and the alerts the work raises by\n"
        "design page nobody (docs/self-healing.md). Without --alertmanager-url no lock is taken, and\n"
        "the command says so.",
    )
    for option, name, text, fallback in (
        (
            "--alertmanager-url",
            "alertmanager_url",
            "the monitoring host's Alertmanager, https://monitor:9093",
            "",
        ),
        ("--alertmanager-user", "alertmanager_user", "its web user", ", else monitoring"),
        ("--alertmanager-password-file", "alertmanager_password_file", "file holding its web password", ""),
        ("--alertmanager-ca-file", "alertmanager_ca_file", "CA bundle for its TLS certificate", ""),
        ("--lock-cluster", "lock_cluster", "the cluster's name as its alerts label it", cluster_fallback),
    ):
        metavar = option.rsplit("-", 1)[1].upper()
        group.add_argument(option, metavar=metavar, help=f"{text} (default: ${LOCK_ENV[name]}{fallback})")
    group.add_argument(
        "--lock-minutes",
        type=float,
        default=240.0,
        metavar="MINUTES",
        help="the lock ends by itself after this, should the run die",
    )
    return common


@contextlib.contextmanager
def planned_work_lock(args: argparse.Namespace, what: str, log, cluster: str | None = None):
    """Hold the cluster's planned-work silence while the block runs (nothing on a dry run). An
    Alertmanager given but refusing stops the command before it changes anything: the caller asked
    for the lock."""
    given = {name: getattr(args, name, None) or os.environ.get(env) for name, env in LOCK_ENV.items()}
    if getattr(args, "dry_run", False):
        yield None
        return
    if not given["alertmanager_url"]:
        log(
            f"no planned-work lock (no --alertmanager-url): the healer is not told about this {what}; "
            "it holds off only while replicas are in transfer or not Active"
        )
        yield None
        return
    cluster = given["lock_cluster"] or cluster
    if not cluster:
        raise ConfigError("the planned-work lock needs the cluster's name: pass --lock-cluster NAME")
    if not 0 < args.lock_minutes <= 7 * 24 * 60:
        raise ConfigError(f"--lock-minutes must be between 0 and 10080, not {args.lock_minutes}")
    password = None
    if given["alertmanager_password_file"]:
        try:
            password = Path(given["alertmanager_password_file"]).read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"cannot read the Alertmanager password file {given['alertmanager_password_file']}: {exc}"
            ) from None
    manager = silences.Alertmanager(
        given["alertmanager_url"],
        given["alertmanager_user"] or "monitoring",  # the monitoring role's web user
        password,
        given["alertmanager_ca_file"],
    )
    comment = f"qdrant-ops {what} (started by {getpass.getuser()})"
    try:
        silence_id = silences.add(
            manager, cluster, silences.REPLICA_WORK_ALERTS, args.lock_minutes * 60, comment=comment
        )
    except silences.SilenceError as exc:
        raise ConfigError(
            f"cannot take the planned-work lock: {exc}; fix it or drop --alertmanager-url"
        ) from None
    log(f"planned-work lock taken for cluster {cluster}: Alertmanager silence {silence_id}")
    try:
        yield silence_id
    finally:
        try:
            silences.expire(manager, silence_id)
            log(f"planned-work lock released (silence {silence_id})")
        except silences.SilenceError as exc:
            log(f"the planned-work silence {silence_id} stays until it ends by itself: {exc}")


def command_group(commands, name: str, help_text: str):
    """A command with actions (`backup list`, ...): without an action it prints its own help."""
    group = commands.add_parser(name, help=help_text)
    group.set_defaults(help_of=group)
    return group.add_subparsers(metavar="ACTION")
