"""notify: mail the run's summary, and/or POST it as JSON to a webhook."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from runner.core.secrets import redact, redact_json
from runner.core.text import plural
from runner.step.facts import RunFacts
from runner.step.ledger import Outcomes
from runner.step.protocol import Action, Done, Plan, apply_each
from runner.step.scope import StepScope
from runner.treatments import notify_summary
from runner.treatments.notify_config import Hook, Mail, hook_settings, mail_settings


@dataclass(frozen=True)
class NotifyConfig:
    name: str
    mail: Mail | None
    hook: Hook | None


class Notify:
    """Mail the run's summary, and/or POST it as JSON to a webhook.

    It runs even after a step failed and stopped the run (the steps between are not
    run). The summary is the run's so far (put this step last): its run id, host,
    area and record (`AREA/.postsync/runs/RUN_ID.json`, once a control file was
    applied; none in a preview), a headline (`1 step failed (NAME: MESSAGE)`, `12
    lines failed`, `ok`), what failed outside the steps (`problems`: a metrics file
    that cannot be written; the headline's `1 problem (...)` when no step failed),
    the recap, each step's status, detail and, when it failed,
    its error, and each control file's outcome, report and failed-line count with
    the first 5 failed lines' numbers and messages (never a line's text: a users
    file's password stays out). Registered secrets are masked. The mail says it as
    text (a line per step: `FAILED   NAME  (ERROR)`), the webhook as JSON. Use the
    step's `when:` to send only when something failed, e.g. `when: run.failed` (a
    step or a control-file line failed). The preview shows what would be sent, and
    sends nothing. A notification that cannot be sent fails the step (exit 3).

    Parameters (at least one of email, webhook):
      email (mapping): smtp_host (required), smtp_port (default 587), security
        (starttls default, ssl, none), from (required), to (list, required),
        username and password (optional; the password is never printed), subject
        (default: `postsync PLAYBOOK on HOST: HEADLINE`, on one line of 200
        characters at most), timeout_seconds (default 30). Every value is templated
        (`run.errors` holds each failed step's message by its name); a line break in
        from, to or subject is refused (exit 4).
      webhook (mapping): url (required, http or https), headers (mapping; their values
        are never printed, e.g. an Authorization token), secret (optional: a key of
        16 characters or more, never printed; the body is signed with it, see
        below), timeout_seconds (default 30).
        The body is the summary as JSON (Content-Type application/json). The URL's
        user and password (sent as Basic auth), every query value and its fragment are
        secrets: printed `***` (`https://***@chat.example.org/hook?token=***`) in
        every output and record; the path is printed as is (put a token in a header
        or the query). Those of at least 8 characters are also masked wherever else
        they appear (a message, an error); a shorter one (`?debug=true&n=100`) is not,
        or every `true` and `100` printed would be: a secret belongs in a value of 8
        characters or more. A redirect is never followed: the header values go to
        the URL's own host only, and a 3xx fails the step naming its status and where
        it pointed (scheme and host). Success is a 2xx answer to the POST itself. The
        connection is direct (HTTP_PROXY and HTTPS_PROXY are not used). A 5xx answer
        or a connection error (refused, reset, closed before the answer) is retried
        after 0.5 s, then 1, 2, 4, 8, 8... s, while timeout_seconds leave a second for
        another attempt; a 4xx or 3xx is not. The item or the error says how many
        attempts were made.

    The body (paths shortened here to AREA and RUN):
      {"run_id": "20250301T023000-4f2a1c", "playbook": "Nightly", "host": "sync1",
       "area": "/srv/moodledata/postsync", "record": "AREA/.postsync/runs/RUN.json",
       "check": false, "started": "2025-03-01T02:30:00+01:00", "failed": true,
       "headline": "1 step failed (purge: archives is not a directory), 2 lines failed",
       "problems": [],
       "recap": {"ok": 0, "changed": 1, "warning": 0, "skipped": 0, "failed": 1,
                 "lines_ok": 1, "lines_failed": 2},
       "steps": [{"name": "enrolments", "status": "changed",
                  "detail": "1 file, 3 lines", "error": null},
                 {"name": "purge", "status": "failed", "detail": "",
                  "error": "archives is not a directory"}],
       "control_files": [{"path": "enrols.csv", "command": "enrolments",
         "outcome": "3 lines: 1 changed, 0 unchanged, 2 failed",
         "report": "AREA/.postsync/runs/RUN/001_enrols.csv.report", "failed_lines": 2,
         "first_failed_lines": [
           {"line": 3, "message": "no such course (idnumber NOPE101)"},
           {"line": 4, "message": "no such user (idnumber NOBODY)"}]}]}

    Signature (with `secret`): each attempt sends `X-Postsync-Timestamp` (Unix
    seconds) and `X-Postsync-Signature: sha256=HEX`, HEX the HMAC-SHA256 with the
    key of the timestamp, a `.` and the body's bytes. A receiver computes the same
    over the bytes it received, compares in constant time, and refuses a timestamp
    more than a few minutes from its clock (a replay).

    timeout_seconds bounds the whole exchange (the host name's lookup, connect, TLS,
    sending, the server's answer; for a webhook, every attempt and the waits
    between), however slowly the resolver or the server talks; at most 64 KiB of a
    webhook's answer is read. A server that is not SMTP or HTTP (an SSH banner)
    fails the step.

    Example:
      - name: tell the ops team
        when: run.failed
        notify:
          email:
            smtp_host: smtp.example.org
            from: postsync@example.org
            to: [moodle-ops@example.org]
            username: postsync
            password: "{{ env.SMTP_PASSWORD }}"
          webhook:
            url: https://chat.example.org/hooks/moodle
            secret: "{{ env.HOOK_SIGNING_KEY }}"
    """

    def configure(self, params: Mapping[str, Any], scope: StepScope) -> NotifyConfig:
        mail = mail_settings(params["email"], scope) if "email" in params else None
        hook = hook_settings(params["webhook"], scope) if "webhook" in params else None
        return NotifyConfig(scope.step.name, mail, hook)

    def plan(self, config: NotifyConfig, run: RunFacts, ledger: Outcomes, services: object) -> Plan:
        # what goes out masks the run's secrets as every output does
        summary = redact_json(notify_summary.summary(run, ledger))
        actions = []
        if config.mail is not None:
            m = config.mail
            given = m.subject
            subject = redact(given) if given is not None else notify_summary.subject(summary)
            m = replace(m, subject=subject)
            target = f"{', '.join(m.to)} via {m.host}:{m.port}"
            actions.append(Action("mail", target, subject, data=("mail", m, summary)))
        if config.hook is not None:
            actions.append(
                Action(
                    "post",
                    config.hook.display,
                    "the run's summary (JSON)" + (", signed" if config.hook.secret else ""),
                    data=("hook", config.hook, summary),
                )
            )
        return Plan(actions, plural(len(actions), "notification"))

    def apply(
        self, actions: Sequence[Action], run: RunFacts, ledger: object, services: object
    ) -> Iterator[Done]:
        def send(action: Action) -> str:
            from runner.treatments import notify_send

            kind, target, summary = action.data
            if kind == "mail":
                notify_send.send_mail(target, notify_summary.text(summary))
                return ""
            body = json.dumps(summary, ensure_ascii=False).encode("utf-8")
            return notify_send.post(target, body)

        yield from apply_each(actions, send, "notification")
