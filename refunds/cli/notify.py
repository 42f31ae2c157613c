"""`refunds notify render`: a customer message template with sample data."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from refunds.cli.common import EXIT_OK, EXIT_USAGE, add_group


def add(commands: Any) -> None:
    actions = add_group(
        commands,
        "notify",
        help="customer message templates",
        description="Look at the customer message templates of the notify service.",
    )
    render = actions.add_parser(
        "render",
        help="render a step's template with sample data",
        description="Render the template of STEP in a locale and channel with built-in sample "
        "data and print the template's name and version, the subject (e-mail) or title "
        "(in_app) or the length and segments (sms), and the body. "
        "Exit status: 0 rendered, 2 unknown step, locale or channel.",
        epilog="example: refunds notify render rejected --locale en --html",
    )
    render.add_argument("step", metavar="STEP", help="received, approved, rejected, paid, ...")
    render.add_argument("--locale", required=True, help="zh-CN or en")
    render.add_argument(
        "--channel", default="email", help="email, sms or in_app (default: %(default)s)"
    )
    render.add_argument(
        "--html", action="store_true", help="print the HTML body instead of the plain text"
    )
    render.add_argument(
        "--again",
        action="store_true",
        help="a later occurrence of the step (a rejection after an appeal, a second evidence "
        "request)",
    )
    render.add_argument(
        "--why",
        choices=("appeal", "evidence"),
        help="in_review only: in review again after an appeal or the evidence asked for",
    )
    render.set_defaults(handler=run_notify_render)


def run_notify_render(args: argparse.Namespace) -> int:
    from services.notify.messages import templates  # only this subcommand needs Jinja2

    where = "refunds notify render"
    known = {
        "step": templates.STEPS,
        "locale": templates.LOCALES,
        "channel": templates.CHANNELS,
    }
    for what, value in (("step", args.step), ("locale", args.locale), ("channel", args.channel)):
        if value not in known[what]:
            print(
                f"{where}: unknown {what} {value!r}; known: {', '.join(known[what])}",
                file=sys.stderr,
            )
            return EXIT_USAGE
    if (args.step, args.channel, args.locale) not in templates.TEMPLATES:
        print(
            f"{where}: no {args.channel} template of {args.step} in {args.locale}", file=sys.stderr
        )
        return EXIT_USAGE
    if args.why is not None and args.step != "in_review":
        print(f"{where}: --why is for in_review only", file=sys.stderr)
        return EXIT_USAGE
    facts = dict(templates.SAMPLE_FACTS[args.step])
    if args.why is not None:
        facts.update(why=args.why, deadline=None)
    rendering = templates.render(
        f"{args.step}#2" if args.again else args.step,
        args.locale,
        facts,
        reference=templates.SAMPLE_REFERENCE,
        channel=args.channel,
    )
    if args.html and rendering.html is None:
        print(f"{where}: the {args.channel} channel has no HTML body", file=sys.stderr)
        return EXIT_USAGE
    print(f"Template: {rendering.template}")
    if args.channel == "sms":
        print(_sms_length(rendering.body))
        print()
        print(rendering.body)
        return EXIT_OK
    print(f"Subject: {rendering.subject}")
    print()
    body = rendering.html if args.html and rendering.html is not None else rendering.body
    print(body, end="" if body.endswith("\n") else "\n")
    return EXIT_OK


def _sms_length(text: str) -> str:
    from services.notify.messages.sms import measure

    length = measure(text)
    plural = "" if length.segments == 1 else "s"
    return f"Length: {len(text)} characters, {length.encoding}, {length.segments} segment{plural}"
