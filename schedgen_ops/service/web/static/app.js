// The student page: upload -> poll the job API -> preview -> calendar. Plain JS, no dependencies.
// Everything user-supplied (file names, venues, titles) is written with textContent, never as HTML.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const form = $("upload-form");
  const maxBytes = Number(form.dataset.maxBytes);
  const maxPages = Number(form.dataset.maxPages);
  const maxFiles = Number(form.dataset.maxFiles);
  const maxSize = form.dataset.maxSize;
  const messages = {};
  for (const li of $("messages").children) messages[li.dataset.code] = li.textContent;
  const semesters = {};
  for (const li of $("semesters").children) semesters[li.dataset.name] = li.dataset;
  const POLL_MS = 700;
  let seq = 0;
  let kept = 0; // files sent to the service and not refused by it (a calendar merges at most maxFiles)
  const done = []; // {seq, job}
  const groupState = new Map(); // module -> Map(group -> checked)
  let previewToken = 0;

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function humanSize(n) {
    return n >= 1048576 ? (n / 1048576).toFixed(1) + " MB" : Math.ceil(n / 1024) + " KB";
  }

  // A student-readable sentence for a stable error code; the raw message fills in what it can.
  function friendly(code, raw, extra) {
    let text = messages[code] || messages.failed;
    const title = /the title is "([^"]*)"/.exec(raw || "");
    const vars = Object.assign({ title: title ? title[1] : "none", limit: maxSize, pages: maxPages,
      files: maxFiles, size: "" }, extra || {});
    return text.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? vars[k] : m));
  }

  function row(name) {
    const li = el("li", { class: "upload" });
    li.append(el("span", { class: "name" }, name));
    const status = el("span", { class: "status" }, "Checking…");
    li.append(status);
    $("uploads").append(li);
    return {
      li,
      set(state, text) {
        li.dataset.state = state;
        status.textContent = text;
      },
    };
  }

  async function looksLikePdf(file) {
    const head = new Uint8Array(await file.slice(0, 5).arrayBuffer());
    return String.fromCharCode(...head) === "%PDF-";
  }

  async function handle(files) {
    const list = Array.from(files);
    if (kept + list.length > maxFiles) {
      for (const file of list) row(file.name).set("failed", friendly("too_many_files"));
      return;
    }
    for (const file of list) {
      const ui = row(file.name);
      const mine = ++seq;
      const isPdfName = /\.pdf$/i.test(file.name) || file.type === "application/pdf";
      if (file.size > maxBytes) {
        ui.set("failed", friendly("file_too_large", "", { size: humanSize(file.size) }));
        continue;
      }
      if (file.size === 0) {
        ui.set("failed", friendly("empty_file"));
        continue;
      }
      if (!isPdfName || !(await looksLikePdf(file))) {
        ui.set("failed", friendly("not_a_pdf"));
        continue;
      }
      upload(file, mine, ui);
    }
  }

  async function upload(file, mine, ui) {
    ui.set("uploading", "Uploading…");
    kept++;
    const body = new FormData();
    body.append("file", file, file.name);
    let response;
    try {
      response = await fetch("/api/uploads", { method: "POST", body });
    } catch (e) {
      kept--;
      ui.set("failed", friendly("network"));
      return;
    }
    const data = await response.json().catch(() => ({}));
    if (response.status !== 202) {
      kept--;
      const err = data.error || {};
      ui.set("failed", friendly(err.code, err.message, { size: humanSize(file.size) }));
      return;
    }
    poll(data.job_id, mine, ui);
  }

  // The service's Retry-After (seconds; queued jobs and 429s) when it sends one, else fallbackMs.
  function retryMs(response, fallbackMs) {
    const seconds = Number(response.headers.get("Retry-After"));
    return Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds, 60) * 1000 : fallbackMs;
  }

  async function poll(job, mine, ui) {
    let data = {};
    let response;
    try {
      response = await fetch("/api/jobs/" + job);
      data = await response.json();
      if (!response.ok) {
        const err = data.error || {};
        if (err.code === "rate_limited") return setTimeout(() => poll(job, mine, ui), retryMs(response, 2000));
        return ui.set("failed", friendly(err.code, err.message));
      }
    } catch (e) {
      return setTimeout(() => poll(job, mine, ui), 2000);
    }
    if (data.status === "queued") {
      const pos = data.queue_position;
      ui.set("queued", pos === null || pos === undefined ? "Queued" :
        pos === 0 ? "Queued: next in line" : "Queued: " + pos + " ahead of you");
    } else if (data.status === "processing") {
      ui.set("processing", "Reading the timetable…");
    } else if (data.status === "completed") {
      ui.set("done", "Done: " + data.kind);
      ui.li.dataset.job = job;
      done.push({ seq: mine, job });
      done.sort((a, b) => a.seq - b.seq);
      return refresh();
    } else if (data.status === "failed") {
      kept--;
      const err = data.error || {};
      return ui.set("failed", friendly(err.code, err.message));
    }
    setTimeout(() => poll(job, mine, ui), retryMs(response, POLL_MS));
  }

  function groupSpecs() {
    const specs = [];
    for (const [module, groups] of groupState) {
      const on = [...groups].filter(([, checked]) => checked).map(([g]) => g);
      if (on.length > 0 && on.length < groups.size) specs.push(module + "=" + on.join(","));
    }
    return specs;
  }

  function request() {
    return {
      jobs: done.map((d) => d.job),
      semester: $("semester").value || null,
      from: $("from").value || null,
      until: $("until").value || null,
      groups: groupSpecs(),
      exam_duration_min: Number($("exam-duration").value) || 180,
    };
  }

  function fillDates() {
    const dates = semesters[$("semester").value];
    if (dates) {
      $("from").value = dates.from;
      $("until").value = dates.until;
    }
  }

  async function refresh() {
    if (done.length === 0) return;
    $("preview").hidden = false;
    $("take").hidden = false;
    $("links").hidden = true;
    const token = ++previewToken;
    const asked = done.length;
    const response = await fetch("/api/calendars/preview", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(request()),
    });
    const data = await response.json().catch(() => ({}));
    if (token !== previewToken) return; // a newer preview is on its way
    if (!response.ok) {
      const err = data.error || {};
      $("summary").textContent = err.message || friendly("failed");
      $("preview").dataset.ready = "error";
      return;
    }
    draw(data);
    $("preview").dataset.files = String(asked); // how many files the drawn preview covers
  }

  function draw(data) {
    const p = data.parsed;
    const summary = $("summary");
    summary.replaceChildren();
    const count = (key, value) => el("strong", { "data-count": key }, String(value));
    summary.append("Found ", count("lectures", p.lectures), " lecture lines, ", count("tests", p.tests),
      " tests and ", count("exams", p.exams), " exams. ");
    if (data.calendar_events !== null) {
      summary.append("Your calendar will hold ", count("calendar", data.calendar_events), " entries.");
    } else {
      summary.append(el("span", { class: "error" }, data.calendar_error.message));
    }
    drawGroups(data.modules);
    drawWeek(data.week);
    drawDated(data.dated);
    $("preview").dataset.ready = String(previewToken);
  }

  function drawGroups(modules) {
    const box = $("groups");
    $("groups-box").hidden = modules.length === 0;
    const known = [...groupState.keys()].join("|");
    if (known === modules.map((m) => m.module).join("|")) return; // keep focus and ticks
    box.replaceChildren();
    for (const m of modules) {
      const state = groupState.get(m.module) || new Map();
      groupState.set(m.module, state);
      const set = el("fieldset", { class: "module" });
      set.append(el("legend", {}, m.module));
      for (const g of m.groups) {
        if (!state.has(g.group)) state.set(g.group, true);
        const id = "g-" + (m.module + "-" + g.group).replace(/[^A-Za-z0-9]+/g, "-");
        const label = el("label", { for: id, class: "check" });
        const tick = el("input", { type: "checkbox", id, "data-module": m.module, "data-group": g.group });
        tick.checked = state.get(g.group);
        tick.addEventListener("change", () => {
          state.set(g.group, tick.checked);
          refresh();
        });
        label.append(tick, " " + g.group + " (" + g.activities.join(", ") + ")");
        set.append(label);
      }
      box.append(set);
    }
  }

  function drawWeek(week) {
    const root = $("week");
    root.replaceChildren();
    if (week.length === 0) root.append(el("p", { class: "help" }, "No lectures in this selection."));
    for (const day of week) {
      const col = el("section", { class: "day", "aria-label": day.weekday });
      col.append(el("h4", {}, day.weekday));
      const list = el("ul", {});
      for (const s of day.slots) {
        const item = el("li", { class: "slot " + s.kind });
        item.append(el("span", { class: "time" }, s.start + "–" + s.end));
        item.append(el("span", { class: "what" }, s.module + " " + s.activity + " · " + s.group));
        item.append(el("span", { class: "where" }, s.venues.join("; ")));
        list.append(item);
      }
      col.append(list);
      root.append(col);
    }
  }

  function drawDated(items) {
    const root = $("dated");
    root.replaceChildren();
    for (const d of items) {
      const li = el("li", { class: d.kind });
      const when = new Date(d.date + "T00:00:00").toLocaleDateString("en-ZA",
        { weekday: "short", day: "numeric", month: "short", year: "numeric" });
      li.append(el("span", { class: "date" }, when));
      li.append(el("span", { class: "time" }, d.start + "–" + d.end + (d.end_estimated ? " (end estimated)" : "")));
      li.append(el("span", { class: "what" }, d.module + " " + d.title));
      li.append(el("span", { class: "where" }, d.venues.length > 3 ?
        d.venues.slice(0, 3).join("; ") + " and " + (d.venues.length - 3) + " more venues" : d.venues.join("; ")));
      root.append(li);
    }
  }

  async function makeCalendar() {
    $("take-error").textContent = "";
    const response = await fetch("/api/subscriptions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(request()),
    });
    const data = await response.json().catch(() => ({}));
    if (response.status !== 201) {
      const err = data.error || {};
      $("take-error").textContent = err.message || friendly("failed");
      return;
    }
    $("download").href = data.download_url;
    $("sub-url").value = data.url;
    $("webcal").href = data.webcal_url;
    $("sub-expires").textContent = new Date(data.expires_at).toLocaleString("en-ZA");
    $("links").hidden = false;
    $("download").focus();
  }

  const drop = $("drop");
  $("files").addEventListener("change", (e) => {
    handle(e.target.files);
  });
  form.addEventListener("submit", (e) => e.preventDefault());
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (e) => {
      e.preventDefault();
      drop.classList.add("over");
    });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    if (e.dataTransfer && e.dataTransfer.files.length) handle(e.dataTransfer.files);
  });
  $("semester").addEventListener("change", () => {
    fillDates();
    refresh();
  });
  for (const id of ["from", "until", "exam-duration"]) $(id).addEventListener("change", refresh);
  $("make-calendar").addEventListener("click", makeCalendar);
  $("sub-url").addEventListener("focus", (e) => e.target.select());
  fillDates();
})();
