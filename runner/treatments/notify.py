"""notify: mail the run's summary, and/or POST it as JSON to a webhook."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runner.core.errors import PlaybookError
from runner.core.secrets import masked_url, redact_json, register
from runner.core.text import plural, printable
from runner.step.facts import RunFacts
from runner.step.ledger import Outcomes
from runner.step.protocol import Action, Done, Plan, apply_each
from runner.step.scope import StepScope
from runner.treatments.notify_config import Hook, Mail

SUBJECT = "postsync {{ run.id }}: {{ 'FAILED' if run.failed else 'ok' }}"


@dataclass(frozen=True)
class NotifyConfig:
    name: str
    mail: Mail | None
    hook: Hook | None


class Notify:
    """Mail the run's summary, and/or POST it as JSON to a webhook.

    It runs even after a step failed and stopped the run (the steps between are not
    run). The summary is the run's so far (put this step last): its recap, each step's status
    and detail, each control file's outcome, the failed lines' count. Use the step's
    `when:` to send only when something failed, e.g. `when: run.failed` (a
    step or a control-file line failed). The preview shows what would be sent, and
    sends nothing. A notification that cannot be sent fails the step (exit 3).

    Parameters (at least one of email, webhook):
      email (mapping): smtp_host (required), smtp_port (default 587), security
        (starttls default, ssl, none), from (required), to (list, required),
        username and password (optional; the password is never printed), subject
        (default: the run id and FAILED or ok), timeout_seconds (default 30). Every
        value is templated; a line break in from, to or subject is refused (exit 4).
      webhook (mapping): url (required, http or https), headers (mapping; their values
        are never printed, e.g. an Authorization token), timeout_seconds (default 30).
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
        connection is direct (HTTP_PROXY and HTTPS_PROXY are not used).

    timeout_seconds bounds the whole exchange (the host name's lookup, connect, TLS,
    sending, the server's answer), however slowly the resolver or the server talks;
    at most 64 KiB of a webhook's answer is read. A server that is not SMTP or HTTP
    (an SSH banner) fails the step.

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
    """

    def configure(self, params: Mapping[str, Any], scope: StepScope) -> NotifyConfig:
        mail = hook = None
        if "email" in params:
            e = params["email"]
            password = scope.render(e["password"], "email", "password") if "password" in e else None
            register(password)
            port = scope.integer(e.get("smtp_port", 587), "smtp_port", 1)
            security = str(scope.render(e.get("security", "starttls"), "email", "security"))
            if security not in ("starttls", "ssl", "none"):
                raise PlaybookError(
                    [scope.error(f"security {security!r}: starttls, ssl or none", "email")]
                )
            mail = Mail(
                host=str(scope.render(e["smtp_host"], "email", "smtp_host")),
                port=port,
                sender=_header(scope, e["from"], "from"),
                to=tuple(_header(scope, t, "to", i) for i, t in enumerate(e["to"])),
                subject=_header(scope, e.get("subject", SUBJECT), "subject"),
                security=security,
                username=scope.render(e["username"], "email", "username")
                if "username" in e
                else None,
                password=password,
                timeout=scope.integer(e.get("timeout_seconds", 30), "timeout_seconds", 1),
            )
        if "webhook" in params:
            w = params["webhook"]
            url = str(scope.render(w["url"], "webhook", "url"))
            display = masked_url(url)  # its secrets registered before any message shows it
            problem = _url_problem(url)
            if problem:
                raise PlaybookError([scope.error(f"url {display!r}: {problem}", "webhook", "url")])
            headers = tuple(
                (str(k), str(scope.render(v, "webhook", "headers", k)))
                for k, v in sorted(w.get("headers", {}).items())
            )
            for name, value in headers:
                register(value)
                if _BREAKS.search(name) or _BREAKS.search(value):
                    raise PlaybookError(
                        [
                            scope.error(
                                "a header's name or value holds a line break or NUL",
                                "webhook",
                                "headers",
                                name,
                            )
                        ]
                    )
            hook = Hook(
                url,
                display,
                headers,
                scope.integer(w.get("timeout_seconds", 30), "timeout_seconds", 1),
            )
        return NotifyConfig(scope.step.name, mail, hook)

    def plan(self, config: NotifyConfig, run: RunFacts, ledger: Outcomes, services: object) -> Plan:
        # what goes out masks the run's secrets as every output does
        summary = redact_json(_summary(run, ledger))
        actions = []
        if config.mail is not None:
            m = config.mail
            target = f"{', '.join(m.to)} via {m.host}:{m.port}"
            actions.append(Action("mail", target, m.subject, data=("mail", m, summary)))
        if config.hook is not None:
            actions.append(
                Action(
                    "post",
                    config.hook.display,
                    "the run's summary (JSON)",
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
                notify_send.send_mail(target, _text(summary))
            else:
                body = json.dumps(summary, ensure_ascii=False).encode("utf-8")
                notify_send.post(target, body)
            return ""

        yield from apply_each(actions, send, "notification")


#: what would end a mail or HTTP header line and start another
_BREAKS = re.compile(r"[\r\n\0]")


def _header(scope: StepScope, value: Any, *key: str | int) -> str:
    """A mail header's rendered value: a line break in it is refused, never folded."""
    text = str(scope.render(value, "email", *key))
    if _BREAKS.search(text):
        raise PlaybookError(
            [
                scope.error(
                    f"renders to {printable(text)!r}: a line break in a mail header", "email", *key
                )
            ]
        )
    return text


def _url_problem(url: str) -> str | None:
    """Why `url` cannot be a webhook's, if it cannot."""
    from urllib.parse import urlsplit

    if not url.startswith(("http://", "https://")):
        return "not an http(s) URL"
    if any(c.isspace() or not c.isprintable() for c in url):
        return "a space, line break or control character in it"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (it raises for an invalid port)
    except ValueError:  # its message may quote a piece of a password: not shown
        return "not a valid URL (a / ? # or @ in a user or password must be percent-encoded)"
    if "@" in parts.path:
        return "an @ after the host (percent-encode it: %40)"
    if not parts.hostname:
        return "no host"
    return None


def _summary(run: RunFacts, ledger: Outcomes) -> dict[str, Any]:
    """What the run did so far: its recap, steps and control files."""
    statuses = list(ledger.statuses.values())
    return {
        "run_id": run.run_id,
        "playbook": run.playbook.name,
        "check": run.check,
        "started": run.now.isoformat(),
        "failed": ledger.failed,
        "problems": list(ledger.problems),
        "recap": {
            status: statuses.count(status) for status in ("ok", "changed", "skipped", "failed")
        }
        | {"lines_ok": ledger.lines_ok, "lines_failed": ledger.failed_lines},
        "steps": [{"name": name, "status": status} for name, status in ledger.statuses.items()],
        "control_files": [
            {"path": run.display(f.path), "command": f.command, "outcome": f.summary()}
            for f in ledger.files
        ],
    }


def _text(summary: dict[str, Any]) -> str:
    r = summary["recap"]
    lines = [
        f"postsync run {summary['run_id']} of {summary['playbook']}, started {summary['started']}",
        f"steps: {r['ok']} ok, {r['changed']} changed, {r['skipped']} skipped,"
        f" {r['failed']} failed; lines: {r['lines_ok']} ok, {r['lines_failed']} failed",
        "",
    ]
    lines += [f"FAILED   {problem}" for problem in summary["problems"]]
    lines += [f"{s['status'].upper():<8} {s['name']}" for s in summary["steps"]]
    if summary["control_files"]:
        lines.append("")
        lines += [f"{f['path']} ({f['command']}): {f['outcome']}" for f in summary["control_files"]]
    return "\n".join(lines) + "\n"
