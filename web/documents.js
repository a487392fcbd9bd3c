// Hearth web UI, documents page: pick a collection (or an agent's documents), upload files
// (GraphQL multipart request, with the CSRF header like every mutation), watch their
// ingestion live (`documentEvents`), download or delete them, and search: each hit shows its
// score and page and opens the exact passage, highlighted in the document's text; and the
// caller's memory (remember, recall). Uses app.js's helpers (gql, gqlUpload, text, $, setError, state).
"use strict";

const HearthDocs = (() => {
  let reloadTimer = null;
  const DOC_FIELDS = "id filename kind status error chunksTotal chunksEmbedded fileSize pages downloadUrl";
  const subscription = "subscription { documentEvents { documentId status chunksTotal chunksEmbedded deleted } }";

  // The current target: { collection } or { agentId }.
  function target() {
    const f = $("#doc-target");
    if (f.kind.value === "agent") return f.agent.value ? { agentId: f.agent.value } : null;
    const name = f.collection.value.trim();
    return name ? { collection: name } : null;
  }

  function progress(d) {
    if (d.status === "EMBEDDING" && d.chunksTotal) return `embedding ${d.chunksEmbedded}/${d.chunksTotal}`;
    if (d.status === "INDEXED") return `indexed · ${d.chunksTotal} chunks`;
    if (d.status === "FAILED") return `failed: ${d.error || ""}`;
    return d.status.toLowerCase();
  }

  async function loadTargets() {
    const { collections, myAgents } = await gql("{ collections { id name } myAgents { id name } }");
    const list = $("#doc-collections");
    list.replaceChildren(...collections.map((c) => new Option(c.name)));
    const f = $("#doc-target");
    const keep = f.agent.value;
    f.agent.replaceChildren(...myAgents.map((a) => new Option(a.name, a.id)));
    if (keep) f.agent.value = keep;
    if (!f.collection.value && collections.length) f.collection.value = collections[0].name;
  }

  async function loadDocuments() {
    const t = target();
    const rows = [];
    if (t) {
      const { documents } = await gql(`query($t: DocumentTarget!) { documents(target: $t, first: 200) { ${DOC_FIELDS} } }`, { t });
      for (const d of documents) {
        const tr = document.createElement("tr");
        tr.dataset.id = d.id;
        const name = text("td", "");
        const link = text("a", d.filename);
        link.href = d.downloadUrl;
        link.download = d.filename;
        name.append(link);
        const del = text("button", "Delete", "danger");
        del.type = "button";
        del.addEventListener("click", () => remove(d.id, d.filename));
        const actions = text("td", "");
        actions.append(del);
        tr.append(name, text("td", d.kind.toLowerCase()), text("td", progress(d), "doc-status"),
          text("td", `${Math.max(1, Math.round(d.fileSize / 1024))} KB`), actions);
        rows.push(tr);
      }
    }
    if (!rows.length) {
      const tr = document.createElement("tr");
      const td = text("td", t ? "No documents here yet." : "Pick a collection or an agent.", "muted");
      td.colSpan = 5;
      tr.append(td);
      rows.push(tr);
    }
    $("#documents tbody").replaceChildren(...rows);
  }

  // One file through the GraphQL multipart request spec.
  async function upload(file, t) {
    const data = await gqlUpload("mutation($f: Upload!, $t: DocumentTarget!) { uploadDocument(file: $f, target: $t) { id } }", { t }, "f", file);
    return data.uploadDocument;
  }

  async function remove(id, name) {
    if (!confirm(`Delete ${name}?`)) return;
    try {
      setError("#app-error");
      await gql("mutation($id: ID!) { deleteDocument(id: $id) }", { id });
      await loadDocuments();
    } catch (e) { setError("#app-error", e); }
  }

  // Renders a passage into `into`: its document's text around the span, the span marked.
  // Returns the passage's title line and its mark. `hit`: {document: {id}, span, page}.
  async function passage(hit, into) {
    const { document: doc } = await gql("query($id: ID!) { document(id: $id) { filename text } }", { id: hit.document.id });
    const chars = Array.from(doc.text);
    const { start, end } = hit.span;
    const from = Math.max(0, start - 400);
    const to = Math.min(chars.length, end + 400);
    const mark = text("mark", chars.slice(start, end).join(""));
    into.replaceChildren(
      (from > 0 ? "…" : "") + chars.slice(from, start).join(""),
      mark,
      chars.slice(end, to).join("") + (to < chars.length ? "…" : ""),
    );
    return { title: `${doc.filename}${hit.page ? ` · page ${hit.page}` : ""} · characters ${start}–${end}`, mark };
  }

  // The documents page's passage view.
  async function openPassage(hit) {
    const { title, mark } = await passage(hit, $("#passage-text"));
    $("#passage").hidden = false;
    $("#passage-title").textContent = title;
    mark.scrollIntoView({ block: "center" });
  }

  async function search(f) {
    const t = f.scope.value === "here" ? target() : null;
    const { search: hits } = await gql(
      "query($q: String!, $t: DocumentTarget, $mode: SearchMode) { search(query: $q, target: $t, mode: $mode, topK: 10) { text score similarity page span { start end } document { id filename } } }",
      { q: f.q.value, t, mode: f.mode.value },
    );
    const items = hits.map((h, i) => {
      const li = document.createElement("li");
      li.className = "hit";
      const head = text("button", `[${i + 1}] ${h.document.filename}${h.page ? ` p.${h.page}` : ""} · ${h.score.toFixed(3)}`, "link");
      head.type = "button";
      head.addEventListener("click", () => openPassage(h).catch((e) => setError("#app-error", e)));
      li.append(head, text("p", h.text.length > 300 ? `${h.text.slice(0, 300)}…` : h.text, "muted"));
      return li;
    });
    if (!items.length) items.push(text("li", "Nothing found.", "muted"));
    $("#hits").replaceChildren(...items);
  }

  async function show() {
    await loadTargets();
    await loadDocuments();
  }

  // Ingestion reports arrive in bursts: redraw once.
  function onEvent() {
    if (parseHash()[0] !== "documents") return;
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(() => loadDocuments().catch((e) => setError("#app-error", e)), 150);
  }

  function bind() {
    const f = $("#doc-target");
    f.addEventListener("submit", (ev) => { ev.preventDefault(); loadDocuments().catch((e) => setError("#app-error", e)); });
    const sync = () => {
      f.collection.closest("label").hidden = f.kind.value !== "collection";
      f.agent.closest("label").hidden = f.kind.value !== "agent";
    };
    f.kind.addEventListener("change", () => { sync(); loadDocuments().catch((e) => setError("#app-error", e)); });
    f.collection.addEventListener("change", () => loadDocuments().catch((e) => setError("#app-error", e)));
    f.agent.addEventListener("change", () => loadDocuments().catch((e) => setError("#app-error", e)));
    sync();
    $("#doc-upload").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const t = target();
      const files = Array.from(ev.target.file.files);
      if (!t || !files.length) { setError("#app-error", "Pick a collection (or agent) and a file."); return; }
      try {
        setError("#app-error");
        for (const file of files) await upload(file, t);
        ev.target.reset();
        await loadTargets();
        await loadDocuments();
      } catch (e) { setError("#app-error", e); }
    });
    $("#memory-add").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        setError("#app-error");
        await gql("mutation($c: String!) { remember(content: $c) { id } }", { c: ev.target.content.value });
        ev.target.reset();
      } catch (e) { setError("#app-error", e); }
    });
    $("#memory-search").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        setError("#app-error");
        const { memorySearch } = await gql("query($q: String!) { memorySearch(query: $q, limit: 5) { content score } }", { q: ev.target.q.value });
        const items = memorySearch.map((m) => text("li", `${m.content} · ${m.score == null ? "" : m.score.toFixed(3)}`));
        if (!items.length) items.push(text("li", "Nothing remembered matches.", "muted"));
        $("#memories").replaceChildren(...items);
      } catch (e) { setError("#app-error", e); }
    });
    $("#doc-search").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try { setError("#app-error"); await search(ev.target); } catch (e) { setError("#app-error", e); }
    });
  }

  return { show, bind, onEvent, subscription, passage };
})();
