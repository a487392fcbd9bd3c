// Hearth web UI, plugins page: the installed plugins with their state (live over
// `pluginEvents`), an upload form for admins (GraphQL multipart request; a refused bundle
// shows the server's reason), lifecycle buttons, the tools each plugin serves, and a form to
// call a function with JSON input. Uses app.js's helpers (gql, gqlUpload, text, $, setError, state).
"use strict";

const HearthPlugins = (() => {
  const FIELDS = "name version description state failure signedBy grantedToAll hooks allowedHosts tools { name description }";
  const subscription = "subscription { pluginEvents { plugin state deleted reloaded failure } }";
  const ACTIONS = { DISABLED: ["enable", "delete"], STOPPED: ["start", "disable", "delete"], RUNNING: ["stop", "reload", "disable", "delete"], FAILED: ["start", "disable", "delete"] };
  const MUTATION = { enable: "enablePlugin", disable: "disablePlugin", start: "startPlugin", stop: "stopPlugin", reload: "reloadPlugin" };
  let reloadTimer = null;

  const isAdmin = () => state.me && state.me.role === "admin";

  async function act(name, action) {
    try {
      setError("#plugin-error");
      if (action === "delete") {
        if (!confirm(`Delete ${name} with its data?`)) return;
        await gql("mutation($n: String!) { deletePlugin(name: $n) }", { n: name });
      } else {
        await gql(`mutation($n: String!) { ${MUTATION[action]}(name: $n) { state } }`, { n: name });
      }
      await load();
    } catch (e) { setError("#plugin-error", e); }
  }

  async function load() {
    const { plugins } = await gql(`{ plugins { ${FIELDS} } }`);
    const rows = plugins.map((p) => {
      const tr = document.createElement("tr");
      tr.dataset.plugin = p.name;
      const name = text("td", "");
      name.append(text("strong", p.name), text("div", p.description, "muted"));
      const st = text("td", p.state.toLowerCase(), "plugin-state");
      if (p.failure) st.append(text("div", p.failure, "error"));
      const tools = text("td", p.tools.map((t) => t.name).join(", ") || "—");
      if (p.hooks.length) tools.append(text("div", `hooks: ${p.hooks.join(", ")}`, "muted"));
      const actions = text("td", "");
      if (isAdmin()) {
        for (const a of ACTIONS[p.state] || []) {
          const b = text("button", a, a === "delete" ? "danger" : "");
          b.type = "button";
          b.dataset.action = a;
          b.addEventListener("click", () => act(p.name, a));
          actions.append(b, " ");
        }
      }
      tr.append(name, text("td", p.version), st, tools, text("td", p.signedBy ? "signed" : "—"), actions);
      return tr;
    });
    if (!rows.length) {
      const tr = document.createElement("tr");
      const td = text("td", "No plugins installed.", "muted");
      td.colSpan = 6;
      tr.append(td);
      rows.push(tr);
    }
    $("#plugins tbody").replaceChildren(...rows);
    const select = $("#plugin-call").plugin;
    const keep = select.value;
    select.replaceChildren(...plugins.filter((p) => p.state === "RUNNING").map((p) => new Option(p.name)));
    if (keep) select.value = keep;
  }

  async function upload(file) {
    const data = await gqlUpload("mutation($f: Upload!) { installPlugin(file: $f) { name version state } }", {}, "f", file);
    return data.installPlugin;
  }

  async function callFunction(f) {
    let input;
    try { input = f.input.value.trim() ? JSON.parse(f.input.value) : {}; }
    catch (e) { throw new Error(`The input is not JSON: ${e.message}`); }
    const { callPlugin } = await gql("mutation($n: String!, $f: String!, $i: JSON) { callPlugin(name: $n, function: $f, input: $i) }",
      { n: f.plugin.value, f: f.function.value, i: input });
    $("#plugin-result").textContent = JSON.stringify(callPlugin, null, 2);
  }

  async function show() {
    $("#plugin-upload").hidden = !isAdmin();
    await load();
  }

  // State changes arrive from every process; redraw once per burst.
  function onEvent() {
    if (parseHash()[0] !== "plugins") return;
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(() => load().catch((e) => setError("#plugin-error", e)), 100);
  }

  function bind() {
    $("#plugin-upload").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const file = ev.target.file.files[0];
      if (!file) { setError("#plugin-error", "Pick a .zip bundle or a .wasm module."); return; }
      try {
        setError("#plugin-error");
        await upload(file);
        ev.target.reset();
        await load();
      } catch (e) { setError("#plugin-error", e); }
    });
    $("#plugin-call").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try { setError("#plugin-error"); await callFunction(ev.target); } catch (e) { setError("#plugin-error", e); }
    });
  }

  return { show, bind, onEvent, subscription };
})();
