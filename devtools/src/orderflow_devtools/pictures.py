"""``orderflow-pictures``: the pictures in docs/images, made from the real thing.

    orderflow-pictures diagram        docs/images/architecture.png from docs/architecture.dot
    orderflow-pictures screenshots    from a running stack (`make up`): the Prometheus UI
                                      graphing a metric, Locust's HTML report, a rendering of
                                      a dashboard, and the Jaeger UI on an order's trace when
                                      the Jaeger binary has its UI assets
    orderflow-pictures dashboard NAME a rendering of dashboards/NAME.json alone, from a
                                      running stack's last minutes (lab 5 draws the
                                      resiliency dashboard beside a chaos run's report)

Screenshots are taken by Debian's headless Chromium, installed with apt-get when it is
missing. It may reach nothing but 127.0.0.1: every other host name resolves to nothing
(``--host-resolver-rules``), no proxy is used, and the background services that would
call home (updates, sync, safe browsing, metrics) are off. As root it runs as ``nobody``,
so that its sandbox stays on.

Grafana does not run here, so the dashboard picture is drawn with matplotlib from each
panel's query run against the live Prometheus, and says on itself that it is a rendering,
not Grafana. The dashboards' JSON stays the thing to import into Grafana.
"""

import argparse
import io
import json
import math
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
from matplotlib.figure import Figure
from PIL import Image  # matplotlib's own dependency

from orderflow_devtools import runfile, status
from orderflow_devtools.observe import eventually
from orderflow_devtools.stack import JAEGER_QUERY_PORT, LOOPBACK, PROMETHEUS_PORT
from orderflow_devtools.tools import ToolError, ensure_debian

IMAGES = Path("docs/images")
PROMETHEUS = f"http://{LOOPBACK}:{PROMETHEUS_PORT}"
JAEGER = f"http://{LOOPBACK}:{JAEGER_QUERY_PORT}"
STOREFRONT = f"http://{LOOPBACK}:8001"
INVENTORY = f"http://{LOOPBACK}:8002"
WINDOW = (1400, 860)
# Chromium lets the page's scripts run this long (virtual time) before the screenshot.
SETTLE_MS = 12_000
DASHBOARD = "service-overview.json"
# What Jaeger's query service serves instead of the UI when built without its assets.
NO_UI_ASSETS = "This is not the Jaeger UI you are looking for"
# The pictures show the last minutes: a fresh stack has no longer history.
WINDOW_MINUTES = 3
# A trace to show crosses every service of the registry (dapr.yaml).
SERVICES = set(runfile.app_ids())
EXIT_FAILURE = 1
# The SDK's and daprd's span batch delay (5 s), and a margin.
SPAN_BATCH_SECONDS = 7.0
# Past this many series a legend hides the panel it explains (Grafana's would scroll).
LEGEND_MAX = 8

# https://peter.sh/experiments/chromium-command-line-switches/ and Chromium's
# docs/linux/debugging.md; each closes a way Chromium would talk to anything but the page.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--disable-gpu",
    "--hide-scrollbars",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-breakpad",
    "--disable-client-side-phishing-detection",
    "--no-pings",
    "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication",
    "--no-proxy-server",
    # Every name but the loopback address resolves to nothing: no DNS query leaves.
    f"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {LOOPBACK}",
)

Log = Callable[[str], None]


class PictureError(Exception):
    """A picture cannot be made; the message is the one-line cause."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="orderflow-pictures", description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["diagram", "screenshots", "dashboard"])
    parser.add_argument(
        "name", nargs="?", default=Path(DASHBOARD).stem, help="dashboard: dashboards/NAME.json"
    )
    parser.add_argument("--out", type=Path, default=IMAGES, help="where the PNG files go")
    args = parser.parse_args(argv)
    try:
        if args.what == "diagram":
            diagram(Path("docs/architecture.dot"), args.out / "architecture.png", _note)
        elif args.what == "dashboard":
            dashboard(Path("dashboards") / f"{args.name}.json", args.out, _note)
        else:
            screenshots(args.out, _note)
    except (PictureError, ToolError) as error:
        _note(str(error))
        return EXIT_FAILURE
    return 0


def _note(message: str) -> None:
    print(f"orderflow-pictures: {message}", file=sys.stderr)  # noqa: T201 - a CLI


def diagram(source: Path, target: Path, log: Log) -> None:
    """Render the Graphviz source with Debian's dot (graphviz 2.42 in bookworm)."""
    dot = ensure_debian("dot", "graphviz", log)
    target.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [str(dot), "-Tpng", "-Gdpi=80", str(source), "-o", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise PictureError(f"dot failed on {source}: {result.stderr.strip()}")
    _shrink(target)
    log(f"wrote {target}")


def screenshots(out: Path, log: Log) -> None:
    with httpx.Client(timeout=10.0) as http:
        for name, url in {
            "storefront": f"{STOREFRONT}/healthz",
            "prometheus": f"{PROMETHEUS}/-/ready",
            "jaeger": f"{JAEGER}/",
        }.items():
            try:
                http.get(url).raise_for_status()
            except httpx.HTTPError as error:
                raise PictureError(
                    f"{name} does not answer at {url} ({type(error).__name__}):"
                    " start the stack with `make up` first"
                ) from error
        chromium = _chromium(log)
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="orderflow-pictures-") as work:
            report = _locust_report(Path(work), log)
            trace_id = _traced_order(http, log)
            shots = {
                "prometheus-graph.png": _prometheus_graph_url(),
                "locust-report.png": report.as_uri(),
            }
            if NO_UI_ASSETS in http.get(f"{JAEGER}/").text:
                log(
                    "jaeger: this binary was built without its UI assets (Jaeger serves a"
                    " placeholder page), so no Jaeger screenshot; the trace is"
                    f" {JAEGER}/api/traces/{trace_id}"
                )
            else:
                shots["jaeger-trace.png"] = f"{JAEGER}/trace/{trace_id}"
            for name, url in shots.items():
                _screenshot(chromium, url, out / name, Path(work), log)
        render_dashboard(http, Path("dashboards") / DASHBOARD, out, log)


def _chromium(log: Log) -> Path:
    if not shutil.which("chromium"):
        log("chromium: not on PATH; installing Debian's package (some 100 MB, a minute or two)")
    return ensure_debian("chromium", "chromium", log)


def _locust_report(work: Path, log: Log) -> Path:
    """The smoke scenario's own HTML report (and traffic for the graphs)."""
    log("running the Locust smoke scenario (under a minute) for its HTML report")
    result = subprocess.run(
        [sys.executable, "-m", "orderflow_loadtest.run", "smoke", "--out", str(work / "load")],
        capture_output=True,
        text=True,
        check=False,
    )
    report = work / "load" / "smoke.html"
    if result.returncode != 0 or not report.exists():
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise PictureError(f"the smoke scenario failed (exit {result.returncode}): {last}")
    return report


def _traced_order(http: httpx.Client, log: Log) -> str:
    """Place an order under a trace id of ours, and wait until Jaeger holds all of it."""
    http.put(f"{INVENTORY}/stock/grinder", json={"quantity": 100}).raise_for_status()
    trace_id = secrets.token_hex(16)
    response = http.post(
        f"{STOREFRONT}/orders",
        json={"customer_id": "c-pictures", "items": [{"sku": "grinder", "quantity": 1}]},
        headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
    )
    response.raise_for_status()
    order_id = response.json()["order_id"]
    log(f"order {order_id}: waiting for its trace {trace_id} to be complete in Jaeger")

    def complete() -> int:
        order = http.get(f"{STOREFRONT}/orders/{order_id}").json()
        found = http.get(f"{JAEGER}/api/traces/{trace_id}")
        if order["status"] != "notified" or found.status_code != httpx.codes.OK:
            return 0
        [trace] = found.json()["data"]
        services = {process["serviceName"] for process in trace["processes"].values()}
        return len(trace["spans"]) if services >= SERVICES else 0

    # Spans arrive in batches (5 s in the SDK and in daprd): the trace is complete when
    # every service is in it and its span count has held still for longer than a batch.
    seen = {"count": 0, "since": time.monotonic()}

    def settled() -> bool:
        count, now = complete(), time.monotonic()
        if count != seen["count"]:
            seen.update(count=count, since=now)
        return count > 0 and now - seen["since"] > SPAN_BATCH_SECONDS

    eventually(settled, f"trace {trace_id} complete in Jaeger", timeout=90.0)
    return trace_id


def _prometheus_graph_url() -> str:
    expr = (
        'sum by (http_route) (rate(http_server_request_duration_seconds_count{app_id="storefront",'
        ' http_route!~"/metrics|/healthz"}[1m]))'
    )
    query = httpx.QueryParams(
        {"g0.expr": expr, "g0.tab": "0", "g0.range_input": f"{WINDOW_MINUTES}m", "g0.stacked": "0"}
    )
    return f"{PROMETHEUS}/graph?{query}"


def _screenshot(chromium: Path, url: str, target: Path, work: Path, log: Log) -> None:
    profile = Path(tempfile.mkdtemp(prefix="chromium-", dir=work))
    shot = profile / "shot.png"
    command = [
        str(chromium),
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile / 'profile'}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        f"--virtual-time-budget={SETTLE_MS}",
        f"--screenshot={shot}",
        url,
    ]
    env = {"HOME": str(profile), "PATH": os.environ.get("PATH", "")}
    if os.geteuid() == 0:
        # Chromium's sandbox refuses root; an unprivileged user keeps it on.
        work.chmod(0o755)  # our temporary directory: nobody must enter it
        shutil.chown(profile, "nobody", "nogroup")
        command = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command]
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=120, check=False
    )
    if result.returncode != 0 or not shot.exists():
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise PictureError(f"chromium could not take {url}: {last}")
    shutil.copyfile(shot, target)
    _shrink(target)
    log(f"wrote {target} ({target.stat().st_size // 1024} KiB) from {url}")


def dashboard(board: Path, out: Path, log: Log) -> Path:
    """One dashboard's rendering, without the screenshots (and without Chromium)."""
    if not board.is_file():
        found = ", ".join(path.stem for path in sorted(board.parent.glob("*.json")))
        raise PictureError(f"no dashboard {board}; choose one of {found}")
    with httpx.Client(timeout=10.0) as http:
        try:
            http.get(f"{PROMETHEUS}/-/ready").raise_for_status()
        except httpx.HTTPError as error:
            raise PictureError(
                f"prometheus does not answer at {PROMETHEUS} ({type(error).__name__}):"
                " start the stack with `make up` first"
            ) from error
        out.mkdir(parents=True, exist_ok=True)
        return render_dashboard(http, board, out, log)


def render_dashboard(http: httpx.Client, board: Path, out: Path, log: Log) -> Path:
    """Each panel's query over the last few minutes, drawn as Grafana would draw the panel:
    a rendering, and it says so."""
    title = json.loads(board.read_text())["title"]
    prometheus = status.Prometheus(PROMETHEUS, http)
    queries = [q for q in status.panel_queries(board.parent) if q.dashboard == title]
    panels: dict[str, list[status.PanelQuery]] = {}
    for query in queries:
        panels.setdefault(query.panel, []).append(query)
    end = time.time()
    columns = 2
    rows = math.ceil(len(panels) / columns)
    # The object API draws without a display or a global backend (no pyplot).
    figure = Figure(figsize=(12, 2.6 * rows))
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax, (panel, targets) in zip(axes.flat, panels.items(), strict=False):
        ax.set_title(panel, fontsize=9, loc="left")
        ax.tick_params(labelsize=7)
        if targets[0].requires:
            ax.text(0.5, 0.5, f"needs {targets[0].requires}", ha="center", va="center")
            continue
        drawn = 0
        for query in targets:
            data = prometheus.get(
                "/api/v1/query_range",
                query=query.expr,
                start=str(end - WINDOW_MINUTES * 60),
                end=str(end),
                step="5",
            )
            for series in data["result"]:
                times = [(float(t) - end) / 60 for t, _ in series["values"]]
                values = [float(v) for _, v in series["values"]]
                label = " ".join(v for k, v in sorted(series["metric"].items()) if k != "job")
                ax.plot(times, values, linewidth=1, label=label or panel)
                drawn += 1
        if 0 < drawn <= LEGEND_MAX:
            ax.legend(fontsize=6, loc="upper left", frameon=False, ncols=2)
        elif not drawn:
            ax.text(0.5, 0.5, "no data", ha="center", va="center")
        ax.set_xlim(-WINDOW_MINUTES, 0)
    for ax in axes[-1]:
        ax.set_xlabel("minutes ago", fontsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    figure.suptitle(
        f"{title}: a RENDERING of its panels' queries on live Prometheus data, NOT Grafana\n"
        f"({board}, last {WINDOW_MINUTES} minutes to"
        f" {datetime.fromtimestamp(end, UTC):%Y-%m-%d %H:%M} UTC)",
        fontsize=10,
    )
    figure.tight_layout()
    target = out / f"dashboard-{board.stem}.png"
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=72)
    target.write_bytes(buffer.getvalue())
    _shrink(target)
    log(f"wrote {target} ({target.stat().st_size // 1024} KiB): a rendering, not Grafana")
    return target


def _shrink(path: Path) -> None:
    """256 colours are plenty for a screenshot or a chart, at a fraction of the bytes."""
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


if __name__ == "__main__":
    sys.exit(main())
