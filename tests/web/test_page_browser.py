"""The student page in a real Chromium against a real api + worker: the three real UP PDFs go in through
the file picker, the preview counts their events, a group is chosen, and the downloaded .ics equals
`schedgen parse` on the same files and choices; the subscription URL serves the same calendar. The
error path (a PDF that is not a timetable, an oversized file) shows the student's messages. Screenshots
at 360 px and 1280 px are kept as artefacts (one is copied to docs/ for the README with
SCHEDGEN_UPDATE_SCREENSHOT=1); at 360 px the page must not scroll sideways.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from stackkit import Stack
from webkit import ensure_worker

from tests.conftest import shared_path

REAL = ["UP_MOD_XLS.pdf", "UP_TST_PDF.pdf", "UP_EXAM_SS.pdf"]
GROUP = ("STK 220", "G01")  # keep only this lecture group of STK 220
REPO = Path(__file__).resolve().parents[2]


def wait_for(driver: Any, predicate: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(
        lambda d: predicate(d), message=f"timed out waiting for {what}"
    )


def by_id(driver: Any, element_id: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id)


def counts(driver: Any) -> dict[str, str]:
    """The preview's numbers, read in one script (the page redraws them while previews arrive)."""
    return dict(
        driver.execute_script(
            "return [...document.querySelectorAll('[data-count]')].map(e => [e.dataset.count, e.textContent])"
        )
    )


def preview_ready(driver: Any, after: str | None = None) -> str:
    """Wait until a preview newer than ``after`` is drawn; return its number."""
    return str(
        wait_for(
            driver,
            lambda d: (r := by_id(d, "preview").get_attribute("data-ready")) not in (None, "", after) and r,
            what="the preview",
        )
    )


def upload_states(driver: Any) -> list[tuple[str, str, str]]:
    """(file name, state, status text) of each upload row, read in one script."""
    rows = driver.execute_script(
        "return [...document.querySelectorAll('#uploads li')].map(li =>"
        " [li.querySelector('.name').textContent, li.dataset.state || '',"
        " li.querySelector('.status').textContent])"
    )
    return [tuple(r) for r in rows]


def strip_stamp(ics: bytes) -> list[str]:
    """Calendar lines without DTSTAMP (the time each calendar was made)."""
    text = ics.decode().replace("\r\n ", "")  # unfold
    return [line for line in text.splitlines() if not line.startswith("DTSTAMP")]


def schedgen_parse(paths: list[Path], out: Path, *args: str) -> bytes:
    project = out.parent / "cli-project"
    project.mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "schedgen_ops.cli.main", "-P", str(project), "parse", *map(str, paths),
           "--format", "ics", "-o", str(out), *args]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDGEN_")}
    subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=60)
    return out.read_bytes()


def jobs_in_ledger(stack: Stack) -> int:
    import psycopg

    with psycopg.connect(stack.env["SCHEDGEN_DATABASE_URL"], autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM jobs").fetchone()
    return int(row[0]) if row else 0


def no_overflow(driver: Any, width: int) -> None:
    inner = driver.execute_script("return window.innerWidth")
    scroll = driver.execute_script("return document.documentElement.scrollWidth")
    assert inner == width, f"viewport is {inner} px, not {width}"
    assert scroll <= width, f"the page is {scroll} px wide at a {width} px viewport: it scrolls sideways"


def set_width(driver: Any, width: int, height: int) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
    )


def full_screenshot(driver: Any, path: Path, width: int) -> None:
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    set_width(driver, width, min(max(height, 600), 4000))
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000, f"{path} looks empty"


DROP_JS = """
const files = document.getElementById('drop-source').files;
const transfer = new DataTransfer();
for (const f of files) transfer.items.add(f);
const zone = document.getElementById('drop');
zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: transfer, bubbles: true, cancelable: true}));
zone.dispatchEvent(new DragEvent('drop', {dataTransfer: transfer, bubbles: true, cancelable: true}));
"""


def drop_files(driver: Any, paths: list[Path]) -> None:
    """Drag and drop: files a test input holds, dropped on the drop zone as a DataTransfer."""
    driver.execute_script(
        "const i = document.createElement('input'); i.type = 'file'; i.multiple = true; i.id = 'drop-source';"
        "i.hidden = true; document.body.append(i);"
    )
    by_id(driver, "drop-source").send_keys("\n".join(str(p) for p in paths))
    driver.execute_script(DROP_JS)


def test_dropped_files_wait_in_the_queue_with_their_position(web_stack: Stack, browser: Any) -> None:
    """With no worker yet, dropped files show their place in the queue, then finish once one runs."""
    driver = browser
    set_width(driver, 1280, 900)
    driver.get(web_stack.base_url + "/")
    assert not any("worker" in p.argv for p in web_stack.procs), "this test runs first, before any worker"
    try:
        drop_files(
            driver, [shared_path("fixtures", "up-pdfs", n) for n in ("UP_TST_PDF.pdf", "UP_EXAM_SS.pdf")]
        )
        wait_for(
            driver,
            lambda d: (
                sorted(t for _, _, t in upload_states(d))
                == ["Queued: 1 ahead of you", "Queued: next in line"]
            ),
            what=f"both files queued with their position: {upload_states(driver)}",
        )
    finally:
        ensure_worker(web_stack)
    wait_for(
        driver,
        lambda d: [s for _, s, _ in upload_states(d)] == ["done", "done"],
        timeout=60,
        what=f"both done once a worker runs: {upload_states(driver)}",
    )
    assert [t for _, _, t in upload_states(driver)] == ["Done: tests", "Done: exams"]
    wait_for(
        driver,
        lambda d: by_id(d, "preview").get_attribute("data-files") == "2",
        what="a preview of the two dropped files",
    )
    assert counts(driver)["exams"] == "5"
    assert (counts(driver)["tests"], counts(driver)["lectures"]) == ("12", "0")


def test_a_student_takes_the_real_timetables_to_a_calendar(
    worker: Stack, browser: Any, artefacts: Path
) -> None:
    web_stack = worker
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    paths = [shared_path("fixtures", "up-pdfs", name) for name in REAL]
    driver = browser
    set_width(driver, 1280, 900)
    driver.get(web_stack.base_url + "/")
    assert driver.title == "UP timetable to calendar"
    # Keyboard: the first Tab reaches the skip link, the next ones the file picker.
    body = driver.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    assert driver.switch_to.active_element.get_attribute("class") == "skip"
    driver.switch_to.active_element.send_keys(Keys.TAB)
    assert driver.switch_to.active_element.get_attribute("id") == "files"
    for element_id in ("files", "semester", "from", "until", "exam-duration"):
        labels = driver.find_elements(By.CSS_SELECTOR, f"label[for='{element_id}']")
        assert labels and labels[0].get_attribute("textContent").strip(), f"#{element_id} has no label"

    by_id(driver, "files").send_keys("\n".join(str(p) for p in paths))
    wait_for(
        driver,
        lambda d: [s for _, s, _ in upload_states(d)] == ["done"] * 3,
        timeout=60,
        what=f"three uploads done: {upload_states(driver)}",
    )
    assert [n for n, _, _ in upload_states(driver)] == REAL
    # The preview counts the events parsed from the three files (DESIGN.md section 7).
    wait_for(
        driver,
        lambda d: by_id(d, "preview").get_attribute("data-files") == "3",
        what="a preview of the three files",
    )
    seen = counts(driver)
    assert (seen["lectures"], seen["tests"], seen["exams"]) == ("46", "12", "5")
    Select(by_id(driver, "semester")).select_by_value("S2")
    ready = preview_ready(driver)
    assert by_id(driver, "from").get_attribute("value") == "2026-07-20"
    all_groups = int(counts(driver)["calendar"])
    stk = driver.find_elements(By.CSS_SELECTOR, f"input[data-module='{GROUP[0]}']")
    assert len(stk) > 1 and GROUP[1] in [b.get_attribute("data-group") for b in stk]
    for box in stk:  # keep only G01: untick the others with the keyboard
        if box.get_attribute("data-group") != GROUP[1]:
            box.send_keys(Keys.SPACE)
            ready = preview_ready(driver, ready)
            focused = driver.switch_to.active_element
            assert focused.get_attribute("data-group") == box.get_attribute("data-group")
            assert driver.execute_script("return getComputedStyle(document.activeElement).outlineStyle") == (
                "solid"
            ), "the focused control has no visible focus outline"
    chosen = int(counts(driver)["calendar"])
    assert chosen < all_groups
    week_text = by_id(driver, "week").text
    assert "STK 220" in week_text and "Monday" in week_text
    dated = driver.find_elements(By.CSS_SELECTOR, "#dated li")
    assert len(dated) == 12 + 5
    assert sum("end estimated" in li.text for li in dated) == 5

    full_screenshot(driver, artefacts / "page-1280.png", 1280)
    set_width(driver, 1280, 1100)
    driver.execute_script("document.getElementById('step-check').scrollIntoView()")
    driver.save_screenshot(str(artefacts / "readme.png"))  # the README's picture: the preview
    set_width(driver, 360, 780)
    no_overflow(driver, 360)
    full_screenshot(driver, artefacts / "page-360.png", 360)
    set_width(driver, 1280, 900)

    by_id(driver, "make-calendar").click()
    wait_for(driver, lambda d: by_id(d, "links").is_displayed(), what="the calendar links")
    assert driver.switch_to.active_element.get_attribute("id") == "download"
    sub_url = by_id(driver, "sub-url").get_attribute("value")
    webcal = by_id(driver, "webcal").get_attribute("href")
    assert re.fullmatch(rf"{re.escape(web_stack.base_url)}/cal/[A-Za-z0-9_-]{{43}}\.ics", sub_url), sub_url
    assert webcal == "webcal://" + sub_url.split("://", 1)[1]
    downloads = artefacts / "downloads"
    for old in downloads.glob("*.ics"):
        old.unlink()
    by_id(driver, "download").click()
    wait_for(driver, lambda d: list(downloads.glob("*.ics")), what="the downloaded .ics")
    downloaded = downloads / "up-timetable.ics"
    wait_for(driver, lambda d: downloaded.exists() and downloaded.stat().st_size > 0, what="the download")
    page_ics = downloaded.read_bytes()
    assert page_ics.count(b"BEGIN:VEVENT") == chosen

    cli_ics = schedgen_parse(paths, artefacts / "cli.ics", "--semester", "S2", "--group", "=".join(GROUP))
    assert strip_stamp(page_ics) == strip_stamp(cli_ics)
    # The subscription URL serves the same calendar, with the same bytes at every poll.
    followed = httpx.get(sub_url, timeout=10)
    assert followed.status_code == 200 and followed.headers["content-type"].startswith("text/calendar")
    assert strip_stamp(followed.content) == strip_stamp(cli_ics)
    assert httpx.get(sub_url, timeout=10).content == followed.content
    if os.environ.get("SCHEDGEN_UPDATE_SCREENSHOT") == "1":
        shutil.copy(artefacts / "readme.png", REPO / "docs" / "images" / "student-page.png")


def test_errors_show_the_students_messages(worker: Stack, browser: Any, tmp_path: Path, up_pdf: Any) -> None:
    web_stack = worker
    driver = browser
    set_width(driver, 360, 780)
    driver.get(web_stack.base_url + "/")
    oversized = tmp_path / "huge.pdf"
    oversized.write_bytes(b"%PDF-1.4\n" + b"0" * 300_000)  # the stack's limit is 200,000 bytes
    not_timetable = up_pdf("not-a-timetable.pdf")
    by_id(driver, "files").send_keys(f"{not_timetable}\n{oversized}")
    wait_for(
        driver,
        lambda d: [s for _, s, _ in upload_states(d)] == ["failed", "failed"],
        timeout=60,
        what=f"both refused: {upload_states(driver)}",
    )
    (_, _, not_msg), (_, _, big_msg) = upload_states(driver)
    assert "not a UP timetable" in not_msg and "“Random Schedule Document”" in not_msg, not_msg
    assert "too large" in big_msg and "293 KB" in big_msg and "195 KB" in big_msg, big_msg
    assert by_id(driver, "preview").get_attribute("hidden") is not None  # nothing to preview
    no_overflow(driver, 360)
    # One calendar merges at most 10 files: a choice of 11 is refused before anything is sent.
    driver.get(web_stack.base_url + "/")
    eleven = []
    for i in range(11):
        eleven.append(tmp_path / f"t{i}.pdf")
        eleven[-1].write_bytes(not_timetable.read_bytes())
    before = jobs_in_ledger(web_stack)
    by_id(driver, "files").send_keys("\n".join(map(str, eleven)))
    wait_for(driver, lambda d: len(upload_states(d)) == 11, what="eleven rows")
    assert {(s, "at most 10 timetables" in t) for _, s, t in upload_states(driver)} == {("failed", True)}
    assert jobs_in_ledger(web_stack) == before
