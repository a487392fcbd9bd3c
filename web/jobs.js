// Hearth web UI, jobs page: the caller's jobs with state and next run, a form that creates
// an `agent_prompt` job (once, every N seconds, or cron in a time zone), and one job's runs,
// kept live by the `jobEvents` subscription. Uses app.js's helpers (gql, text, $, setError).
"use strict";

const HearthJobs = (() => {
  let openId = null;
  let reloadTimer = null;
  const JOB_FIELDS = "id name kind state paused nextRunAt cancelRequested schedule { once everySecs cron timezone } lastRun { outcome finishedAt }";

  const when = (t) => (t ? new Date(t).toLocaleString() : "—");

  function describe(s) {
    if (s.once) return `once at ${when(s.once)}`;
    if (s.everySecs) return `every ${s.everySecs} s`;
    return `cron ${s.cron} (${s.timezone})`;
  }

  async function loadList() {
    const { jobs } = await gql(`{ jobs(first: 100) { jobs { ${JOB_FIELDS} } } }`);
    const rows = jobs.jobs.map((j) => {
      const tr = document.createElement("tr");
      tr.dataset.id = j.id;
      const name = text("td", "");
      const link = text("a", j.name);
      link.href = `#/jobs/${j.id}`;
      name.append(link);
      tr.append(name, text("td", j.kind), text("td", describe(j.schedule)),
        text("td", j.state.toLowerCase(), "job-state"), text("td", when(j.nextRunAt)),
        text("td", j.lastRun ? j.lastRun.outcome.toLowerCase() : "—"));
      return tr;
    });
    if (!rows.length) {
      const tr = document.createElement("tr");
      const td = text("td", "No jobs yet.", "muted");
      td.colSpan = 6;
      tr.append(td);
      rows.push(tr);
    }
    $("#jobs tbody").replaceChildren(...rows);
  }

  async function loadAgents() {
    const { myAgents, publicAgents } = await gql("{ myAgents { id name } publicAgents(limit: 100) { agents { id name } } }");
    const select = $("#new-job").agent;
    const seen = new Set();
    select.replaceChildren();
    for (const a of [...myAgents, ...publicAgents.agents]) {
      if (seen.has(a.id)) continue;
      seen.add(a.id);
      select.append(new Option(a.name, a.id));
    }
  }

  async function loadJob() {
    if (!openId) { $("#job-view").hidden = true; return; }
    let job;
    try {
      ({ job } = await gql(`query($id: ID!) { job(id: $id) { ${JOB_FIELDS} attempt retryAt runs(first: 50) { id attempt cause outcome startedAt finishedAt error output } } }`, { id: openId }));
    } catch (e) {
      if (e.code === "not_found") { openId = null; $("#job-view").hidden = true; return; }
      throw e;
    }
    $("#job-view").hidden = false;
    $("#job-title").textContent = job.name;
    const extra = job.retryAt ? ` · retry at ${when(job.retryAt)}` : "";
    $("#job-state").textContent = `${job.state.toLowerCase()} · ${describe(job.schedule)} · next run ${when(job.nextRunAt)}${extra}`;
    $("#job-pause").textContent = job.paused ? "Resume" : "Pause";
    $("#job-cancel").disabled = job.state !== "RUNNING" && !job.retryAt;
    $("#job-runs tbody").replaceChildren(...job.runs.map((r) => {
      const tr = document.createElement("tr");
      const result = r.error || (r.output && r.output.content) || "";
      tr.append(text("td", String(r.attempt)), text("td", r.cause.toLowerCase()),
        text("td", r.outcome.toLowerCase(), "run-outcome"), text("td", when(r.startedAt)),
        text("td", when(r.finishedAt)), text("td", result.slice(0, 200)));
      return tr;
    }));
  }

  async function show(id) {
    openId = id;
    await Promise.all([loadList(), loadAgents(), loadJob()]);
  }

  // Many events arrive together (a run starts, reports progress, ends): redraw once.
  function onEvent() {
    if (parseHash()[0] !== "jobs") return;
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(() => {
      Promise.all([loadList(), loadJob()]).catch((e) => setError("#app-error", e));
    }, 100);
  }

  async function act(mutation) {
    try {
      setError("#app-error");
      await gql(`mutation($id: ID!) { ${mutation}(id: $id) { id } }`, { id: openId });
      await Promise.all([loadList(), loadJob()]);
    } catch (e) { setError("#app-error", e); }
  }

  function scheduleOf(f) {
    if (f.type.value === "once") {
      return { once: f.once.value ? new Date(f.once.value).toISOString() : new Date().toISOString() };
    }
    if (f.type.value === "every") return { everySecs: Number(f.every.value) };
    return { cron: f.cron.value, timezone: f.timezone.value || "UTC" };
  }

  function bind() {
    const f = $("#new-job");
    const sync = () => {
      for (const el of f.querySelectorAll("[data-schedule]")) el.hidden = el.dataset.schedule !== f.type.value;
    };
    f.type.addEventListener("change", sync);
    sync();
    f.timezone.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
    f.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        setError("#app-error");
        const input = {
          name: f.name.value, kind: "agent_prompt",
          payload: { agent_id: Number(f.agent.value), prompt: f.prompt.value },
          schedule: scheduleOf(f), maxAttempts: Number(f.maxAttempts.value),
        };
        const { createJob } = await gql("mutation($i: CreateJobInput!) { createJob(input: $i) { id } }", { i: input });
        f.reset();
        sync();
        location.hash = `#/jobs/${createJob.id}`;
      } catch (e) { setError("#app-error", e); }
    });
    $("#job-run-now").addEventListener("click", () => act("runJobNow"));
    $("#job-cancel").addEventListener("click", () => act("cancelJob"));
    $("#job-pause").addEventListener("click", () => act($("#job-pause").textContent === "Resume" ? "resumeJob" : "pauseJob"));
    $("#job-delete").addEventListener("click", async () => {
      if (!confirm("Delete this job and its runs?")) return;
      await act("deleteJob");
      location.hash = "#/jobs";
    });
  }

  return { show, onEvent, bind, subscription: "subscription { jobEvents { kind jobId } }" };
})();
