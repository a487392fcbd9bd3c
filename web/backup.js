// Hearth web UI, admin page's backups: download an archive of the instance
// (`GET /backup/export`), check an archive (`POST /backup/import?dry_run=true`) and show what
// a restore would change, then restore it (`dry_run=false`) once the admin confirmed. A
// restore ends every session, this one included: the page then asks to sign in again.
// Uses app.js's helpers ($, text, state, setError).
"use strict";

const HearthBackup = (() => {
  let archive = null;

  async function send(file, dryRun) {
    const form = new FormData();
    form.append("file", file, file.name);
    const headers = {};
    if (state.csrf) headers["X-CSRF-Token"] = state.csrf;
    const res = await fetch(`/backup/import?dry_run=${dryRun}`, { method: "POST", headers, credentials: "same-origin", body: form });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(body.detail || (body.error && body.error.message) || `HTTP ${res.status}`);
    return body;
  }

  function showPlan(answer) {
    const plan = answer.plan;
    const src = plan.source;
    $("#backup-source").textContent =
      `Written by Hearth ${answer.version} on ${src.backend} at ${src.created_at} (schema ${src.schema_version}).`;
    $("#backup-tables tbody").replaceChildren(...plan.tables.map((t) => {
      const tr = document.createElement("tr");
      tr.dataset.table = t.table;
      tr.append(text("td", t.table), text("td", String(t.rows)), text("td", String(t.create)),
        text("td", String(t.replace)), text("td", String(t.remove)));
      return tr;
    }));
    const plugins = plan.plugins.length ? plan.plugins.join(", ") : "none";
    $("#backup-effects").textContent =
      `A restore replaces every table, ends ${plan.sessions_ended} session(s) (yours too), rebuilds the vector indexes of ${plan.indexes_rebuilt} collection(s); plugins: ${plugins}.`;
    $("#backup-confirm").checked = false;
    $("#backup-restore").disabled = true;
    $("#backup-plan").hidden = false;
  }

  function show() {
    $("#backup-plan").hidden = true;
    $("#backup-done").textContent = "";
  }

  function bind() {
    $("#backup-import").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      archive = ev.target.file.files[0] || null;
      if (!archive) { setError("#backup-error", "Pick a backup archive (.zip)."); return; }
      try {
        setError("#backup-error");
        $("#backup-plan").hidden = true;
        showPlan(await send(archive, true));
      } catch (e) { setError("#backup-error", e); }
    });
    $("#backup-confirm").addEventListener("change", (ev) => { $("#backup-restore").disabled = !ev.target.checked; });
    $("#backup-restore").addEventListener("click", async () => {
      if (!archive) return;
      try {
        setError("#backup-error");
        $("#backup-restore").disabled = true;
        await send(archive, false);
        $("#backup-plan").hidden = true;
        $("#backup-done").textContent = "Restored. Every session ended: sign in again.";
        setTimeout(() => location.reload(), 1500);
      } catch (e) { setError("#backup-error", e); $("#backup-restore").disabled = false; }
    });
  }

  return { show, bind };
})();
