"""The `scanhub` command: `scan`, `status`, `task`, `search` (Click for arguments, Rich for display).

Every command talks to one service, a Hub or a Worker (`--url`, default `$SCANHUB_URL`,
else the local Hub of `make run`), with the same authorization options. Errors are one line
on stderr starting with `error:`, never a traceback; see docs/cli.md for the exit codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import re
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console

from cli import cluster, lookup
from cli.client import Authorization, BearerTokens, ServiceError, StaticToken, connect, default_url
from cli.display import LiveProgress, PlainProgress, is_interactive, print_verdicts, printable
from cli.files import LocalFile, Selection, select_files
from cli.results import FileResult, Finished, ResultFiles, load_finished, resume_key
from cli.scan import ScanOptions, ScanState, run_scan
from cli.verdicts import ERROR, EXIT_ERROR, EXIT_INTERRUPTED, FAIL_ON_LEVELS, exit_code

T = TypeVar("T")
# An MD5, SHA1 or SHA256 in hex: the only thing `search` puts in its URL's path.
HASH_PATTERN = re.compile(r"[0-9a-fA-F]{32}|[0-9a-fA-F]{40}|[0-9a-fA-F]{64}")
F = TypeVar("F", bound=Callable[..., Any])


def connection_options(command: F) -> F:
    """The options every command shares: where the service is and how to authorize."""
    options = [
        click.option(
            "--url",
            default=default_url,
            callback=http_url,
            show_default="$SCANHUB_URL, else http://127.0.0.1:${SCANHUB_HUB_PORT:-8080}",
            help="The Hub or Worker to talk to.",
        ),
        click.option(
            "--token",
            envvar="SCANHUB_TOKEN",
            help="A static token, sent as 'Authorization: Token <token>' [env: SCANHUB_TOKEN].",
        ),
        click.option(
            "--bearer-client-id",
            envvar="SCANHUB_CLIENT_ID",
            help="OAuth2 client id for bearer tokens (with --bearer-secret) [env: SCANHUB_CLIENT_ID].",
        ),
        click.option(
            "--bearer-secret",
            envvar="SCANHUB_CLIENT_SECRET",
            help="OAuth2 client secret (a static token of the service): bearer tokens are requested "
            "from each service's /api/auth/v1/token and renewed before they expire "
            "[env: SCANHUB_CLIENT_SECRET].",
        ),
        click.option(
            "--ca-file",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            envvar="SCANHUB_CA_FILE",
            help="A CA certificate (PEM) to trust for HTTPS, e.g. scanhub's own <state dir>/tls/ca.pem "
            "[env: SCANHUB_CA_FILE].",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def http_url(context: click.Context, parameter: click.Parameter, value: str) -> str:
    if not value.lower().startswith(("http://", "https://")):
        raise click.BadParameter(f"{value!r} is not an http:// or https:// URL")
    return value.rstrip("/")


def authorization(token: str | None, client_id: str | None, secret: str | None) -> Authorization:
    if token and secret:
        raise click.UsageError("give either --token or --bearer-client-id/--bearer-secret, not both")
    if secret:
        return BearerTokens(client_id or "scanhub-cli", secret)
    if client_id:
        raise click.UsageError("--bearer-client-id needs --bearer-secret")
    return StaticToken(token) if token else Authorization()


def fail(message: str) -> NoReturn:
    click.echo(f"error: {printable(message)}", err=True)
    sys.exit(EXIT_ERROR)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; a request that failed for good ends the command with exit 2,
    Ctrl-C with exit 130, both without a traceback."""
    try:
        return asyncio.run(coroutine)
    except ServiceError as error:
        fail(str(error))
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)


def with_client(
    function: Callable[..., Coroutine[Any, Any, T]], url: str
) -> Callable[..., Coroutine[Any, Any, T]]:
    """Call `function(client, ...)` with a Client made from the connection options (`url`
    the --url: when it is https, credentials go over https only)."""

    @functools.wraps(function)
    async def call(
        *args: Any, token: Any, bearer_client_id: Any, bearer_secret: Any, ca_file: Any, **kwargs: Any
    ) -> T:
        async with connect(authorization(token, bearer_client_id, bearer_secret), ca_file, url=url) as client:
            return await function(client, *args, **kwargs)

    return call


class OutputClosed(Exception):
    """The reader of the output went away (`scanhub ... | head`)."""


class Group(click.Group):
    """Click ends a command whose output was closed with exit 1, which here means "--fail-on
    met": a closed pipe is turned into OutputClosed before Click sees it, and exits 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OSError as error:
            if error.errno == errno.EPIPE:
                raise OutputClosed() from error
            raise


def silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it on the way out fails no more."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def cli() -> None:
    """scanhub's command-line client: scan files, show the cluster, read reports, search samples."""


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@connection_options
@click.option(
    "--concurrency",
    default=8,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Files in flight at once (uploading or waiting for their report).",
)
@click.option(
    "--report-type",
    help="Report type asked of the Worker (small, medium, large, or a site's own) "
    "[default: the Worker's, medium].",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write one JSON line per file here (path, size, sha256, task_url, state, report or error).",
)
@click.option(
    "--resume",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Skip the files recorded as done in this JSON-lines file, and append this run's results to it "
    "(created when missing).",
)
@click.option(
    "--fail-on",
    type=click.Choice(FAIL_ON_LEVELS),
    help="Exit 1 when any file is classified at or above this level (errors still exit 2).",
)
@click.option(
    "--task-timeout",
    default=600.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds to wait for one file's report before counting it as an error.",
)
def scan(
    paths: tuple[str, ...],
    url: str,
    token: str | None,
    bearer_client_id: str | None,
    bearer_secret: str | None,
    ca_file: Path | None,
    concurrency: int,
    report_type: str | None,
    output: Path | None,
    resume: Path | None,
    fail_on: str | None,
    task_timeout: float,
) -> None:
    """Upload files and folders (recursively) and print each file's verdict.

    Folders are walked without following symbolic links; links, devices and sockets inside
    them are skipped. Exit status: 0 all done, 1 a file at or above --fail-on, 2 any error
    (which wins over 1), 130 interrupted.
    """
    auth = authorization(token, bearer_client_id, bearer_secret)
    try:
        selection = select_files(paths, exclude=[path for path in (output, resume) if path is not None])
        report_selection(selection)
        finished = load_finished(resume) if resume is not None else Finished({})
    except KeyboardInterrupt:  # a large tree takes a while to walk
        click.echo("\ninterrupted before any file was sent", err=True)
        sys.exit(EXIT_INTERRUPTED)
    earlier, to_send = split_finished(selection.files, finished)
    if resume is not None:
        report_resume(resume, finished, len(earlier), len(to_send))
    try:
        outputs = ResultFiles(output, resume)
    except OSError as error:
        fail(f"cannot write results: {error}")
    options = ScanOptions(url, concurrency, report_type, task_timeout)
    state = ScanState()
    try:
        asyncio.run(scan_files(auth, ca_file, options, to_send, outputs, state))
    except KeyboardInterrupt:
        report_interrupt(state, len(to_send), outputs)
        sys.exit(EXIT_INTERRUPTED)
    finally:
        outputs.close()
    if state.stopped is not None:
        unsent = len(to_send) - len(state.results)
        click.echo(
            f"error: the scan stopped, {unsent} file(s) not sent: {printable(state.stopped)}", err=True
        )
    # In the order the files were selected, not the order they happened to finish in.
    position = {file: index for index, file in enumerate(selection.files)}
    results = sorted(earlier + state.results, key=lambda result: position[result.file])
    print_verdicts(sys.stdout, results)
    # A file or folder that could not be read was not scanned: an error like a refused upload.
    states = [result.state for result in results] + [ERROR] * len(selection.unreadable)
    codes = [result.verdict.classification for result in results if result.verdict is not None]
    sys.exit(exit_code(states, codes, fail_on))


async def scan_files(
    auth: Authorization,
    ca_file: Path | None,
    options: ScanOptions,
    files: list[LocalFile],
    outputs: ResultFiles,
    state: ScanState,
) -> None:
    total_bytes = sum(file.size for file in files)
    progress: LiveProgress | PlainProgress
    if is_interactive(sys.stderr):
        progress = LiveProgress(Console(file=sys.stderr), len(files), total_bytes)
    else:
        progress = PlainProgress(sys.stderr, len(files), total_bytes)
    async with connect(auth, ca_file, options.concurrency, url=options.url) as client:
        with progress:
            await run_scan(client, options, files, progress, outputs, state)
    if isinstance(progress, PlainProgress) and files:
        progress.write(progress.summary())


def split_finished(files: list[LocalFile], finished: Finished) -> tuple[list[FileResult], list[LocalFile]]:
    """(results of the files an earlier run finished, the files still to send)."""
    earlier, to_send = [], []
    for file in files:
        record = finished.records.get(resume_key(file))
        if record is None:
            to_send.append(file)
        else:
            earlier.append(FileResult.from_record(file, record))
    return earlier, to_send


def report_selection(selection: Selection) -> None:
    for problem in selection.unreadable:
        click.echo(f"warning: cannot read {printable(problem)}", err=True)
    if not selection.files:
        click.echo("no regular file to send", err=True)
    skipped = []
    if selection.skipped_links:
        skipped.append(f"{selection.skipped_links} symbolic link(s)")
    if selection.skipped_special:
        skipped.append(f"{selection.skipped_special} special file(s)")
    if skipped:
        click.echo(f"skipped {' and '.join(skipped)} (only regular files are sent)", err=True)
    if selection.skipped_results:
        click.echo(
            f"skipped {selection.skipped_results} result file(s) of this scan (--output, --resume)", err=True
        )


def report_resume(resume: Path, finished: Finished, skipped: int, remaining: int) -> None:
    name = printable(resume)
    click.echo(f"resume: {skipped} file(s) already done in {name}, {remaining} to send", err=True)
    if finished.unreadable_lines:
        click.echo(f"resume: ignored {finished.unreadable_lines} unreadable line(s) in {name}", err=True)


def report_interrupt(state: ScanState, total: int, outputs: ResultFiles) -> None:
    """How far an interrupted scan got, where its results are, and how to go on."""
    click.echo(f"\ninterrupted: {len(state.results)} of {total} file(s) finished", err=True)
    if outputs.paths:
        written = ", ".join(printable(path) for path in outputs.paths)
        click.echo(f"results so far are in {written}", err=True)
        click.echo(f"to go on, run the same command with --resume {printable(outputs.paths[0])}", err=True)
    else:
        click.echo("no --output or --resume was given: results were not kept", err=True)


@cli.command()
@connection_options
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(url: str, as_json: bool, **connection: Any) -> None:
    """Show the Hub's Workers (health, queue depth, forwarded tasks, last error), throughput and verdicts."""
    answer = run(with_client(cluster.read_status, url)(url, **connection))
    if as_json:
        cluster.print_json(sys.stdout, answer)
    else:
        cluster.print_status(sys.stdout, url, answer)


@cli.command()
@click.argument("task_ref", metavar="TASK")
@connection_options
@click.option("--report-type", help="Report type (small, medium, large, or a site's own).")
def task(task_ref: str, url: str, report_type: str | None, **connection: Any) -> None:
    """Print one task and its report as JSON.

    TASK is a task_url as an upload answered it, or a task id of the Worker at --url.
    """
    answer = run(with_client(lookup.read_task, url)(task_url(task_ref, url), report_type, **connection))
    cluster.print_json(sys.stdout, answer)


def task_url(reference: str, url: str) -> str:
    """A task_url as given, or the URL of task `reference` (an id) at the Worker `url`."""
    if reference.isascii() and reference.isdigit():
        return f"{url}{lookup.TASK_PATH.format(task_id=reference)}"
    if not reference.lower().startswith(("http://", "https://")):
        raise click.BadParameter("give a task_url (http:// or https://) or a task id", param_hint="TASK")
    return reference


@cli.command()
@click.argument("digest", metavar="HASH")
@connection_options
@click.option("--json", "as_json", is_flag=True, help="Print the search answer as JSON.")
def search(digest: str, url: str, as_json: bool, **connection: Any) -> None:
    """List the tasks of a sample, by its MD5, SHA1 or SHA256 (on a Hub: every Worker's)."""
    digest = digest.strip()
    if not HASH_PATTERN.fullmatch(digest):
        raise click.BadParameter("give an MD5, SHA1 or SHA256: 32, 40 or 64 hex digits", param_hint="HASH")
    answer = run(with_client(lookup.search, url)(url, digest, **connection))
    if as_json:
        cluster.print_json(sys.stdout, answer)
    else:
        lookup.print_search(sys.stdout, sys.stderr, answer)


def main() -> None:
    """The console script. Whatever goes wrong unforeseen ends with one `error:` line and
    exit 2, never a traceback and never exit 1, which means "--fail-on met"."""
    try:
        code = cli.main(prog_name="scanhub", standalone_mode=False)
    except click.exceptions.Abort:  # Ctrl-C or end of input outside a command's own handling
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as error:  # a usage error: exit 2, with Click's message
        error.show()
        sys.exit(EXIT_ERROR if error.exit_code == 1 else error.exit_code)
    except OutputClosed:
        silence_stdout()
        sys.exit(EXIT_ERROR)
    except Exception as error:
        while isinstance(error, ExceptionGroup) and error.exceptions:  # a scan's TaskGroup
            error = error.exceptions[0]
        fail(f"unexpected {type(error).__name__}: {error}")
    if isinstance(code, int) and code:  # a `ctx.exit(code)`, which Click returns here
        sys.exit(code)
