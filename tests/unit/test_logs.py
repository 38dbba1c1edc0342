"""Log lines: one line per event, the task id on lines about a task, text or JSON."""

from __future__ import annotations

import io
import logging

import orjson
import pytest

from common.logs import (
    JsonFormatter,
    TaskIdFilter,
    TextFormatter,
    configure_logging,
    log_format,
    task_context,
)
from worker.tasks import report_summary


def emit(formatter: logging.Formatter, *messages: tuple, **extra) -> list[str]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(TaskIdFilter())
    handler.setFormatter(formatter)
    logger = logging.getLogger("scanhub.test-logs")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        for message in messages:
            if message[0] == "exception":
                try:
                    raise ValueError("line one\nline two")
                except ValueError:
                    logger.exception(*message[1:], **extra)
            else:
                logger.info(*message, **extra)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue().splitlines()


def test_text_lines_name_the_task_once_whether_or_not_the_message_does():
    with task_context(12):
        lines = emit(TextFormatter(), ("task %s done", 12), ("download retried",), ("task %s done", 123))
    assert lines[0].endswith("scanhub.test-logs: task 12 done")
    assert lines[1].endswith("download retried [task 12]")
    assert lines[2].endswith("task 123 done [task 12]")  # another task named is not this one
    assert emit(TextFormatter(), ("no task here",))[0].endswith("no task here")


def test_a_traceback_stays_on_its_events_line_in_text_and_json():
    (text,) = emit(TextFormatter(), ("exception", "it broke"))
    assert "it broke" in text and "Traceback" in text and "line one | line two" in text
    (line,) = emit(JsonFormatter(), ("exception", "it broke"))
    entry = orjson.loads(line)
    assert entry["message"] == "it broke" and "ValueError: line one\nline two" in entry["exception"]


def test_json_lines_carry_the_task_id_from_the_context_or_from_extra():
    with task_context(7):
        (from_context,) = emit(JsonFormatter(), ("analyzing",))
    (from_extra,) = emit(JsonFormatter(), ("accepted",), extra={"task_id": 9})
    (without,) = emit(JsonFormatter(), ("sweep",))
    assert orjson.loads(from_context)["task_id"] == 7
    assert orjson.loads(from_extra)["task_id"] == 9
    entry = orjson.loads(without)
    assert "task_id" not in entry
    assert {"time", "level", "logger", "message"} <= entry.keys() and entry["level"] == "INFO"


def test_the_task_context_ends_with_its_block():
    with task_context(5):
        pass
    (line,) = emit(JsonFormatter(), ("after",))
    assert "task_id" not in orjson.loads(line)


def test_the_format_is_text_or_json_and_anything_else_is_refused(monkeypatch):
    monkeypatch.setenv("SCANHUB_LOG_FORMAT", "JSON")
    assert log_format() == "json"
    assert log_format("text") == "text"
    with pytest.raises(ValueError, match="SCANHUB_LOG_FORMAT"):
        log_format("xml")


def test_configure_logging_sets_one_handler_and_quietens_celerys_per_job_lines(monkeypatch):
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        monkeypatch.setenv("SCANHUB_LOG_LEVEL", "info")
        configure_logging(fmt="json")
        assert len(root.handlers) == 1 and isinstance(root.handlers[0].formatter, JsonFormatter)
        assert root.level == logging.INFO
        assert logging.getLogger("celery.app.trace").level == logging.WARNING
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.getLogger("celery.app.trace").setLevel(logging.NOTSET)
        logging.captureWarnings(False)


def test_a_reports_log_summary_names_file_type_verdict_threat_and_children():
    report = [
        {
            "info": {"file": {"file_type": "Archive", "file_subtype": "ZIP"}},
            "classification": {"classification": 3, "result": "Text.Test.EICAR"},
        },
        {"info": {}},
        {"info": {}},
    ]
    assert (
        report_summary("bundle.zip", report)
        == "'bundle.zip', Archive/ZIP, malicious Text.Test.EICAR, 2 unpacked"
    )
    assert report_summary("odd", {"shape": "any"}) == "'odd', unidentified, unknown, 0 unpacked"
    text = [{"info": {"file": {"file_type": "Text", "file_subtype": "None"}}}]
    assert report_summary("notes", text) == "'notes', Text, unknown, 0 unpacked"


def test_a_line_with_text_orjson_refuses_is_still_written():
    # Formatted directly: a record holding a lone surrogate goes to no other handler.
    record = logging.LogRecord(
        "scanhub.test-logs", logging.INFO, __file__, 1, "file %s", ("bad\udcffname",), None
    )
    entry = orjson.loads(JsonFormatter().format(record))
    assert entry["message"] == "file bad\\udcffname" and entry["level"] == "INFO"


def test_a_carriage_return_does_not_split_a_text_line():
    (line,) = emit(TextFormatter(), ("one\rtwo",))
    assert line.endswith("one | two")


def test_the_format_setting_is_case_insensitive_like_the_variable(monkeypatch, tmp_path):
    from worker.settings import WorkerSettings

    monkeypatch.setenv("SCANHUB_LOG_FORMAT", "JSON")
    assert WorkerSettings(spool_dir=tmp_path).log_format == "json"
