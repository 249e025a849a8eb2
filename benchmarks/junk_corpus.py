"""Issue 15's junk corpus through every door: REST, C-STORE and the CLI, against the real service (loopback).

The junk is SYNTHETIC (generated here at run time, from the bundled examples where a real header is needed).
Starts ``run_server`` with the REAL models and default worker settings on free 127.0.0.1 ports (HTTP + DICOM),
samples the summed RSS of the server and all its descendants every 0.2 s, then for each item:
REST upload (and C-STORE for the DICOM ones, CLI ``predict`` for the file-like ones), each junk upload followed
at once by a normal ultrasound study whose upload → done time is compared with the same study's time before
any junk (the delay). Exits 1 on any traceback, any 5xx, peak RSS >= 3 GB or a delay > 30 s.

    PYTHONPATH=src .venv/bin/python benchmarks/junk_corpus.py [--out junk-report.md]
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pydicom
from pydicom.uid import generate_uid

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "service"))
from service_helpers import CT_SERIES, US_IMAGES, LiveServer, free_port  # noqa: E402
from test_service_junk import _png_header_only, _zip_of_zeros  # noqa: E402

MB = 1024 * 1024
GB = 1024**3
NORMAL_US = US_IMAGES[0]
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"  # the bundled CT-MD slices' transfer syntax


# -- the corpus (SYNTHETIC) ----------------------------------------------------------------------------------

def _with_uids(path: Path, study_uid: str, series_uid: str, **tags: str) -> bytes:
    """A bundled CT-MD slice with fresh SOP/series/study UIDs (they ship empty) and ``tags`` overridden."""
    ds = pydicom.dcmread(path)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    for key, value in tags.items():
        setattr(ds, key, value)
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


def _big_zero_png(width: int, height: int) -> bytes:
    """A black 8-bit PNG of width x height, streamed (no full-size array here)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    packer = zlib.compressobj(9)
    row = b"\0" * (width + 1)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


@dataclass
class Item:
    name: str
    files: list[tuple[str, bytes]]
    task: str | None = None        # REST `task` field and CLI --task
    cstore: bool = False           # also sent through C-STORE
    cli: bool = True               # also given to `lesiondx predict`
    normal: bool = False           # a real, in-scope study (expected: done, not flagged)
    rows: list[dict] = field(default_factory=list)


def corpus() -> list[Item]:
    study, series = generate_uid(), generate_uid()
    ct0 = _with_uids(CT_SERIES[0], study, series)
    jpeg = NORMAL_US.read_bytes()
    s2, r2 = generate_uid(), generate_uid()
    ct_series = [(f"IM{i:04d}.dcm", _with_uids(p, s2, r2)) for i, p in enumerate(CT_SERIES)]
    return [
        Item("empty file", [("empty.dcm", b"")], "ct-covid"),
        Item("text named .dcm", [("notes.dcm", b"this is a text file, not DICOM\n" * 20)], "ct-covid"),
        Item("truncated DICOM", [("truncated.dcm", ct0[:3000])], "ct-covid", cstore=True),
        Item("header-only DICOM", [("header-only.dcm", ct0[:200])], "ct-covid", cstore=True),
        Item("fake PNG (GIF bytes)", [("fake.png", b"GIF89a not really a png at all")], "us-liver"),
        Item("truncated JPEG", [("half.jpg", jpeg[:5000])], "us-liver"),
        Item("PDF", [("report.pdf", b"%PDF-1.4 something\n%%EOF\n")], "us-liver"),
        Item("broken zip", [("broken.zip", b"PK\x03\x04" + b"\x00" * 50)], "ct-covid"),
        Item("zip of zero-filled members (1.7 GB inflated)", [("bomb.zip", _zip_of_zeros(18, 96))], "ct-covid"),
        Item("12000x12000 PNG of zeros", [("big.png", _big_zero_png(12000, 12000))], "us-liver"),
        Item("PNG header claiming 60000x60000", [("huge-header.png", _png_header_only(60000, 60000))], "us-liver"),
        Item("MR DICOM (CT-MD slice, Modality MR)",
             [("mr.dcm", _with_uids(CT_SERIES[0], generate_uid(), generate_uid(), Modality="MR"))],
             "ct-covid", cstore=True),
        Item("ultrasound JPEG as ct-covid", [("liver.jpg", jpeg)], "ct-covid"),
        Item("random bytes named .png", [("random.png", os.urandom(40_000))], "us-liver"),
        Item("NORMAL: real ultrasound JPEG", [(US_IMAGES[1].name, US_IMAGES[1].read_bytes())], "us-liver",
             normal=True),
        Item("NORMAL: 10-slice CT series P002", ct_series, "ct-covid", cstore=True, normal=True),
    ]


# -- memory of the server tree (/proc: psutil is not installed) ------------------------------------------------

def _tree_rss(root: int) -> int:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                ppid = int(stat[stat.rfind(")") + 2:].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.samples, self.stop = pid, 0, 0, threading.Event()
        self.peak_at = ""

    def run(self) -> None:
        while not self.stop.wait(0.2):
            rss = _tree_rss(self.pid)
            self.samples += 1
            if rss > self.peak:
                self.peak, self.peak_at = rss, current_step
    # current_step is a module global naming what is being sent (for "peak during ...")


current_step = "start"
seen_audit: set[str] = set()


# -- the doors ------------------------------------------------------------------------------------------------

def _flag(body: dict) -> str:
    text = repr(body)
    if body.get("status") == "failed":
        return "refused (study failed)"
    if body.get("status") == "done" and not body.get("results"):
        return "refused (study done, no result)"
    if "'out_of_scope_flag': True" in text or "'status': 'refused'" in text:
        return "flagged / gate refused"
    if body.get("status") == "done":
        return "done, not flagged"
    return body.get("status", "?")


def _reason(body: dict) -> str:
    for key in ("failure", "error"):
        if body.get(key):
            return str(body[key])
    errors = body.get("errors") or (body.get("detail") or {}).get("errors") if isinstance(body.get("detail"), dict) \
        else body.get("errors")
    if errors:
        return "; ".join(e.get("reason", "") for e in errors)
    reasons = re.findall(r"'reasons': \[([^\]]+)\]", repr(body))
    return reasons[0] if reasons else (str(body.get("detail", "")) if body.get("detail") else "")


def wait_done(client: httpx.Client, study_id: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/api/studies/{study_id}").json()
        if body["status"] in ("done", "failed") or time.monotonic() > deadline:
            return body
        time.sleep(0.25)


def normal_study_seconds(client: httpx.Client) -> float:
    """Upload the normal ultrasound study and wait until it is done: seconds."""
    started = time.monotonic()
    r = client.post("/api/studies", files=[("files", (NORMAL_US.name, NORMAL_US.read_bytes(), "image/jpeg"))],
                    data={"task": "us-liver"})
    body = wait_done(client, r.json()["id"], 600)
    if body["status"] != "done":
        raise RuntimeError(f"normal study did not finish: {body.get('status')} {body.get('error')}")
    return time.monotonic() - started


def rest(client: httpx.Client, item: Item, baseline: float) -> dict:
    files = [("files", (n, b, "application/octet-stream")) for n, b in item.files]
    r = client.post("/api/studies", files=files, data={"task": item.task} if item.task else {}, timeout=300)
    delay = normal_study_seconds(client) - baseline  # uploaded right after the junk one
    body = r.json()
    row = {"door": "REST", "status": str(r.status_code), "delay_s": round(delay, 1), "5xx": r.status_code >= 500}
    if r.status_code == 201:
        body = wait_done(client, body["id"], 600)
        row |= {"outcome": _flag(body), "reason": _reason(body)}
    else:
        row |= {"outcome": "refused at upload", "reason": _reason(body)}
    row["traceback"] = "Traceback" in r.text or "Traceback" in repr(body)
    return row


def cstore(client: httpx.Client, item: Item, dicom_port: int, tmp: Path) -> dict:
    from pynetdicom import AE, _config
    from pynetdicom.sop_class import CTImageStorage

    _config.STORE_SEND_CHUNKED_DATASET = True  # send each file's bytes as they are (truncated ones too)
    known = {s["id"] for s in client.get("/api/studies").json()}
    ae = AE(ae_title="JUNKSCU")
    ae.add_requested_context(CTImageStorage, JPEG_LOSSLESS_SV1)  # every DICOM item comes from a CT-MD slice
    statuses, notes = [], []
    assoc = ae.associate("127.0.0.1", dicom_port, ae_title="LESIONDX")
    if not assoc.is_established:
        return {"door": "C-STORE", "status": "no association", "outcome": "-", "reason": "", "traceback": False}
    for name, data in item.files:
        path = tmp / name
        path.write_bytes(data)
        try:
            status = assoc.send_c_store(path)  # sent as read from the file, without decoding the dataset
            statuses.append(f"0x{status.Status:04X}" if "Status" in status else "no response")
            if "ErrorComment" in status:
                notes.append(str(status.ErrorComment))
        except Exception as exc:  # the SCU itself cannot send it: not the server's doing
            statuses.append("SCU cannot send")
            notes.append(f"{type(exc).__name__}: {str(exc)[:80]}")
    assoc.release()
    row = {"door": "C-STORE", "status": ",".join(sorted(set(statuses))), "traceback": False, "5xx": False}
    outcome, reason = "-", "; ".join(notes)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # a study opened by the association (accepted or refused instances)
        new = [s for s in client.get("/api/studies").json() if s["id"] not in known]
        if new:
            body = wait_done(client, new[0]["id"], 600)
            if body["status"] in ("done", "failed"):
                outcome, reason = _flag(body), (_reason(body) or reason)
                break
        elif not any(s == "0x0000" for s in statuses) or _association_audit(client):
            break  # no study: refusals and objects accepted but not analysed go to the audit log
        time.sleep(0.5)
    if outcome == "-":
        time.sleep(1)
        entry = _association_audit(client)
        if entry is not None:
            seen_audit.add(entry["at"] + entry["detail"])
            outcome = "refused (audit log)" if entry["action"] == "dicom_refused" else "accepted, not analysed (audit log)"
            reason = entry["detail"]
    row |= {"outcome": outcome, "reason": reason}
    return row


def _association_audit(client: httpx.Client) -> dict | None:
    """The newest ``dicom_refused`` / ``dicom_ignored`` audit entry not reported yet (an association's outcome when it
    opened no study), or None."""
    for entry in client.get("/api/audit", params={"limit": 20}).json():
        if entry["action"] in ("dicom_refused", "dicom_ignored") and entry["at"] + entry["detail"] not in seen_audit:
            return entry
    return None


def cli(item: Item, tmp: Path, env: dict) -> dict:
    folder = tmp / "cli" / re.sub(r"\W+", "_", item.name)
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in item.files:
        (folder / name).write_bytes(data)
    target = folder if len(item.files) > 1 else folder / item.files[0][0]
    cmd = [sys.executable, "-m", "lesiondx.cli", "predict", "--task", item.task or "us-liver", str(target),
           "--out", str(tmp / "cli-out"), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    out = proc.stdout + proc.stderr
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    outcome = "refused" if proc.returncode else ("flagged" if re.search(r'"out_of_scope_flag": true', out)
                                                 else "result, not flagged")
    return {"door": "CLI", "status": f"exit {proc.returncode}", "outcome": outcome, "traceback": "Traceback" in out,
            "reason": errors[0][7:] if errors else "", "5xx": False}


# -- run -------------------------------------------------------------------------------------------------------

def main() -> int:
    global current_step
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown table here")
    parser.add_argument("--no-cli", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    tmp = Path(tempfile.mkdtemp(prefix="lesiondx-junk-"))
    items = corpus()
    server = LiveServer(tmp / "store", dicom_port=free_port(), env={"LESIONDX_STUDY_QUIET_S": "2"})
    server.env.pop("LESIONDX_PREDICTOR", None)  # the REAL models
    server.start(timeout=180)
    sampler = RssSampler(server.proc.pid)
    sampler.start()
    log = tmp / f"server-{server.port}.log"
    try:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            current_step = "warm-up"
            warm = normal_study_seconds(client)  # loads the us-liver model in a worker
            baseline = min(normal_study_seconds(client), normal_study_seconds(client))
            for item in items:
                current_step = item.name
                item.rows.append(rest(client, item, baseline))
                if item.cstore:
                    item.rows.append(cstore(client, item, server.dicom_port, tmp))
            health = client.get("/api/health").json()
        if not args.no_cli:
            env = {**os.environ}
            env.pop("LESIONDX_PREDICTOR", None)
            for item in items:
                current_step = f"{item.name} (CLI; server idle)"
                item.rows.append(cli(item, tmp, env))
    finally:
        sampler.stop.set()
        sampler.join()
        server.kill(15)
    server_log = log.read_text(errors="replace") if log.exists() else ""
    server_tracebacks = server_log.count("Traceback")
    load_after = os.getloadavg()

    lines = [f"Run {started}; {os.cpu_count()} CPUs; load average (1/5/15 min) before "
             f"{'/'.join(f'{x:.1f}' for x in load_before)}, after {'/'.join(f'{x:.1f}' for x in load_after)}.",
             f"Normal ultrasound study upload → done: warm-up {warm:.1f} s, baseline {baseline:.1f} s.", "",
             "| item (SYNTHETIC unless NORMAL) | door | HTTP / C-STORE / exit | outcome | reason (truncated) | "
             "traceback | delay of next normal study (s) |", "|---|---|---|---|---|---|---:|"]
    for item in items:
        for row in item.rows:
            reason = re.sub(r"\s+", " ", str(row.get("reason", "")))[:110].replace("|", "/")
            lines.append(f"| {item.name} | {row['door']} | {row['status']} | {row['outcome']} | {reason} | "
                         f"{'YES' if row['traceback'] else 'no'} | {row.get('delay_s', '')} |")
    rows = [r for i in items for r in i.rows]
    delays = [r["delay_s"] for r in rows if "delay_s" in r]
    peak = sampler.peak / GB
    tracebacks = sum(r["traceback"] for r in rows) + server_tracebacks
    five = sum(r.get("5xx", False) for r in rows)
    lines += ["", f"Peak RSS of the server + workers: {peak:.2f} GB (during: {sampler.peak_at}; "
                  f"{sampler.samples} samples at 0.2 s). Max delay: {max(delays):.1f} s. "
                  f"Tracebacks: {tracebacks} (server log: {server_tracebacks}). 5xx: {five}. "
                  f"Service health after: {health.get('status')}, worker alive {health.get('worker_alive')}."]
    verdict = tracebacks == 0 and five == 0 and peak < 3 and max(delays) <= 30
    lines.append(f"Verdict: {'PASS' if verdict else 'FAIL'} (no traceback, no 5xx, peak < 3 GB, delay <= 30 s).")
    text = "\n".join(lines)
    print(text)
    if server_tracebacks:
        print("\n--- server log tracebacks ---\n" + server_log[server_log.find("Traceback"):][:4000])
    if args.out:
        args.out.write_text(text + "\n")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
