// Hearth web UI: cookie login (with its CSRF token for mutations), one page per capability
// behind hash links (`#/chats/42`, `#/agents`, …), chats and agents over GraphQL, live chat
// list and token-by-token answers through graphql-ws subscriptions (`chatChanges`,
// `chatEvents`); the jobs page is in jobs.js, the documents page in documents.js, the
// admin page's monitoring in monitoring.js, usage in usage.js, backups in backup.js. No build
// step.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { csrf: sessionStorage.getItem("hearth.csrf") || "", chatId: null, after: null, search: "", ws: null, wsReady: false, me: null, eventsId: null, cursor: null };
const PAGES = ["chats", "agents", "documents", "plugins", "jobs", "admin"];

function setError(id, err) { $(id).textContent = err ? String(err.message || err) : ""; }

async function gql(query, variables = {}) {
  const headers = { "Content-Type": "application/json" };
  if (state.csrf) headers["X-CSRF-Token"] = state.csrf;
  const res = await fetch("/graphql", { method: "POST", headers, credentials: "same-origin", body: JSON.stringify({ query, variables }) });
  const body = await res.json().catch(() => ({}));
  if (body.errors && body.errors.length) {
    const e = body.errors[0];
    const err = new Error(e.message);
    err.code = e.extensions && e.extensions.code;
    throw err;
  }
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  return body.data;
}

// A GraphQL mutation carrying one file (the multipart request spec), with the CSRF header
// like every mutation; `fileVar` names the variable the file fills.
async function gqlUpload(query, variables, fileVar, file) {
  const form = new FormData();
  form.append("operations", JSON.stringify({ query, variables: { ...variables, [fileVar]: null } }));
  form.append("map", JSON.stringify({ 0: [`variables.${fileVar}`] }));
  form.append("0", file, file.name);
  const headers = {};
  if (state.csrf) headers["X-CSRF-Token"] = state.csrf;
  const res = await fetch("/graphql", { method: "POST", headers, credentials: "same-origin", body: form });
  const body = await res.json().catch(() => ({}));
  if (body.errors && body.errors.length) throw new Error(`${file.name}: ${body.errors[0].message}`);
  if (!res.ok) throw new Error(`${file.name}: HTTP ${res.status}`);
  return body.data;
}

async function postJson(path, payload) {
  const headers = { "Content-Type": "application/json" };
  if (state.csrf) headers["X-CSRF-Token"] = state.csrf;
  const res = await fetch(path, { method: "POST", headers, credentials: "same-origin", body: payload ? JSON.stringify(payload) : undefined });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.detail || (body.error && body.error.message) || `HTTP ${res.status}`);
  return body;
}

function text(tag, content, cls) {
  const el = document.createElement(tag);
  el.textContent = content;
  if (cls) el.className = cls;
  return el;
}

async function login(user, password) {
  const body = await postJson("/auth/login", { user, password });
  state.csrf = body.csrf_token;
  sessionStorage.setItem("hearth.csrf", state.csrf);
  await start();
}

async function start() {
  let me;
  try {
    const data = await gql("{ me { username name role } csrfToken }");
    me = data.me;
    // A tab that has the cookie but not the token (new tab, restored session) gets it here.
    if (!state.csrf && data.csrfToken) {
      state.csrf = data.csrfToken;
      sessionStorage.setItem("hearth.csrf", state.csrf);
    }
  } catch (e) {
    $("#auth").hidden = false; $("#app").hidden = true; $("#nav").hidden = true;
    return;
  }
  state.me = me;
  $("#who").textContent = `${me.name} (${me.role})`;
  $("#nav-admin").hidden = me.role !== "admin";
  $("#auth").hidden = true; $("#app").hidden = false; $("#nav").hidden = false;
  await Promise.all([loadChats(true), loadAgents()]);
  subscribe();
  await route();
}

// The page and object a hash names: `#/chats/42` → ["chats", "42"]; anything else → chats.
function parseHash() {
  const [page, id] = location.hash.replace(/^#\/?/, "").split("/");
  return [PAGES.includes(page) ? page : "chats", id || null];
}

async function route() {
  if (!state.me) return;
  let [page, id] = parseHash();
  if (page === "admin" && state.me.role !== "admin") page = "chats";
  for (const el of document.querySelectorAll(".page")) el.hidden = el.dataset.page !== page;
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === page);
  try {
    if (page === "chats" && id && id !== state.chatId) await openChat(id);
    if (page === "admin") await Promise.all([loadUsers(), HearthMonitoring.show(), HearthUsage.show(), HearthBackup.show()]);
    else HearthMonitoring.hide();
    if (page === "jobs") await HearthJobs.show(id);
    if (page === "documents") await HearthDocs.show();
    if (page === "plugins") await HearthPlugins.show();
    // Tools come and go with plugins: the agent form offers the current ones.
    if (page === "agents") await loadAgents();
  } catch (e) { setError("#app-error", e); }
}

async function loadUsers() {
  const { users } = await gql("{ users(limit: 100) { users { username email role isActive } } }");
  $("#users tbody").replaceChildren(...users.users.map((u) => {
    const tr = document.createElement("tr");
    tr.append(text("td", u.username), text("td", u.email || ""), text("td", u.role), text("td", u.isActive ? "yes" : "no"));
    return tr;
  }));
}

// Reloads can overlap (a subscription event during a click); only the newest one renders.
let chatsGeneration = 0;

async function loadChats(reset) {
  const generation = reset ? ++chatsGeneration : chatsGeneration;
  const data = await gql(
    "query($after: String, $search: String) { chatConnection(first: 30, after: $after, search: $search) { edges { node { id title } } pageInfo { hasNextPage endCursor } } }",
    { after: reset ? null : state.after, search: state.search || null });
  if (generation !== chatsGeneration) return;
  const conn = data.chatConnection;
  const items = conn.edges.map(({ node }) => {
    const li = text("li", node.title);
    li.dataset.id = node.id;
    if (node.id === state.chatId) li.classList.add("active");
    li.addEventListener("click", () => openChat(node.id).catch((e) => setError("#app-error", e)));
    return li;
  });
  if (reset) $("#chats").replaceChildren(...items);
  else $("#chats").append(...items);
  state.after = conn.pageInfo.endCursor;
  $("#more").hidden = !conn.pageInfo.hasNextPage;
}

// Chat loads can overlap (two quick clicks); only the newest one may draw, so the chat on
// screen is always the one Rename, Delete and Send act on.
let openGeneration = 0;

async function openChat(id) {
  const generation = ++openGeneration;
  state.chatId = id;
  // The open chat is a deep link (replaced, so Back leaves the chat list rather than each chat).
  if (location.hash !== `#/chats/${id}`) history.replaceState(null, "", `#/chats/${id}`);
  for (const li of document.querySelectorAll("#chats li")) li.classList.toggle("active", li.dataset.id === id);
  let chat;
  try {
    chat = (await gql(`query($id: ID!) { chat(id: $id) { id title agent { name } messages(last: 50) { id role content status createdAt sources { ${SOURCE_FIELDS} } } } }`, { id })).chat;
  } catch (e) {
    if (generation === openGeneration) { state.chatId = null; $("#chat-view").hidden = true; }
    throw e;
  }
  if (generation !== openGeneration) return;
  $("#chat-view").hidden = false;
  $("#rename").title.value = chat.title;
  $("#chat-agent").textContent = chat.agent ? `Agent: ${chat.agent.name}` : "No agent: the server's default model";
  const list = $("#messages");
  list.replaceChildren();
  if (!chat.messages.length) list.append(text("li", "No messages yet.", "muted"));
  for (const m of chat.messages) {
    // An answer still being written keeps its id, so its next tokens land in it.
    list.append(Object.assign(messageItem(m.role, m.content, m.status, m.sources), { id: `msg-${m.id}` }));
  }
  // An answer still being written (a reload mid-answer) is replayed from its start: its
  // stored text is only the last checkpoint.
  const writing = chat.messages.find((m) => m.status === "streaming");
  state.cursor = writing ? `${writing.id}.0.0` : null;
  if (writing) document.querySelector(`#msg-${writing.id} .body`).dataset.source = "";
  $("#stop").hidden = !writing;
  listenToChat();
}

const SOURCE_FIELDS = "n cited documentId filename span { start end } page";

function messageItem(role, content, status, sources) {
  const li = document.createElement("li");
  li.className = `message ${role}`;
  // Answers are Markdown (rendered safely); what people type stays plain text.
  const body = role === "assistant" ? document.createElement("div") : text("span", content, "body");
  if (role === "assistant") {
    body.className = "body markdown";
    body.dataset.source = content;
    HearthMarkdown.render(body, content);
  }
  li.append(text("span", role, "role"), body);
  if (status && status !== "complete" && status !== "streaming") li.append(text("span", ` (${status})`, "muted"));
  if (sources && sources.length) li.append(sourceList(sources));
  return li;
}

// An answer's numbered sources; each opens its exact passage under it.
function sourceList(sources) {
  const ol = document.createElement("ol");
  ol.className = "sources";
  for (const s of sources) {
    const item = document.createElement("li");
    const open = text("button", `[${s.n}] ${s.filename}${s.page ? ` p.${s.page}` : ""}${s.cited ? "" : " (not cited)"}`, "link");
    open.type = "button";
    const view = text("blockquote", "", "passage");
    view.hidden = true;
    open.addEventListener("click", async () => {
      if (!view.hidden) { view.hidden = true; return; }
      try {
        const { title } = await HearthDocs.passage({ document: { id: s.documentId }, span: s.span, page: s.page }, view);
        view.title = title;
        view.hidden = false;
      } catch (e) { setError("#app-error", e); }
    });
    item.append(open, view);
    ol.append(item);
  }
  return ol;
}

// Streaming answers re-render at most once a frame, however fast tokens arrive.
const pendingRenders = new Set();
function scheduleRender(body) {
  if (pendingRenders.has(body)) return;
  pendingRenders.add(body);
  requestAnimationFrame(() => {
    pendingRenders.delete(body);
    // Highlighting waits for the finished answer: re-highlighting every frame costs more
    // the longer the answer gets.
    HearthMarkdown.render(body, body.dataset.source, { highlight: false });
  });
}

// One `chatEvents` subscription, for the open chat; its id names the chat, so events of the
// chat left behind (already in flight) are recognised and dropped. It resumes after the last
// event seen (`state.cursor`), so a socket that reconnects misses nothing.
function listenToChat() {
  if (!state.ws || !state.wsReady || !state.chatId) return;
  if (state.eventsId) state.ws.send(JSON.stringify({ id: state.eventsId, type: "complete" }));
  state.eventsId = `events-${state.chatId}`;
  const query = `subscription($c: ID!, $after: String) { chatEvents(chatId: $c, after: $after) { type cursor messageId delta code error message { content status sources { ${SOURCE_FIELDS} } } } }`;
  state.ws.send(JSON.stringify({ id: state.eventsId, type: "subscribe", payload: { query, variables: { c: state.chatId, after: state.cursor } } }));
}

function onChatEvent(e) {
  const list = $("#messages");
  const atEnd = window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 48;
  const id = `msg-${e.messageId}`;
  let li = e.messageId && document.getElementById(id);
  if (e.cursor) state.cursor = e.cursor;
  if (e.type === "STARTED") {
    list.querySelector(".muted:only-child")?.remove();
    if (li) li.querySelector(".body").dataset.source = "";
    else {
      li = messageItem("assistant", "");
      li.id = id;
      list.append(li);
    }
    $("#stop").hidden = false;
  } else if (e.type === "TOKEN" && li) {
    const body = li.querySelector(".body");
    body.dataset.source = (body.dataset.source || "") + e.delta;
    scheduleRender(body);
  } else if (e.type === "RESPONSE") {
    if (li) li.replaceWith(Object.assign(messageItem("assistant", e.message.content, e.message.status, e.message.sources), { id }));
    $("#stop").hidden = true;
  } else if (e.type === "ERROR") {
    if (li) li.append(text("span", ` (${e.code})`, "error"));
    setError("#app-error", e.error);
    $("#stop").hidden = true;
  }
  // Follow the answer only for a reader who is at the end already.
  if (atEnd) list.lastElementChild?.scrollIntoView({ block: "end" });
}

async function loadAgents() {
  const { myAgents, publicAgents, tools } = await gql("{ myAgents { id name model isPublic tools } publicAgents(limit: 100) { agents { id name } } tools { name plugin description } }");
  const list = $("#agents");
  list.replaceChildren();
  for (const a of myAgents) list.append(text("li", `${a.name}${a.isPublic ? " (public)" : ""}${a.model ? ` — ${a.model}` : ""}${a.tools.length ? ` · tools: ${a.tools.join(", ")}` : ""}`));
  $("#new-agent").tools.replaceChildren(...tools.map((t) => new Option(`${t.name} (${t.plugin})`, t.name)));
  if (!myAgents.length) list.append(text("li", "You have no agents yet.", "muted"));
  const select = $("#new-chat").agent;
  select.replaceChildren(new Option("No agent", ""));
  const seen = new Set();
  for (const a of [...myAgents, ...publicAgents.agents]) {
    if (seen.has(a.id)) continue;
    seen.add(a.id);
    select.append(new Option(a.name, a.id));
  }
}

function subscribe() {
  if (state.ws) return;
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql/ws`;
  const ws = new WebSocket(url, "graphql-transport-ws");
  state.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify({ type: "connection_init", payload: {} }));
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === "ping") ws.send(JSON.stringify({ type: "pong" }));
    else if (msg.type === "connection_ack") {
      state.wsReady = true;
      state.retry = 0;
      ws.send(JSON.stringify({ id: "chats", type: "subscribe", payload: { query: "subscription { chatChanges { kind chatId chat { title } } }" } }));
      ws.send(JSON.stringify({ id: "jobs", type: "subscribe", payload: { query: HearthJobs.subscription } }));
      ws.send(JSON.stringify({ id: "documents", type: "subscribe", payload: { query: HearthDocs.subscription } }));
      ws.send(JSON.stringify({ id: "plugins", type: "subscribe", payload: { query: HearthPlugins.subscription } }));
      listenToChat();
    } else if (msg.type === "next" && msg.id.startsWith("events-")) {
      if (msg.id === state.eventsId && msg.payload.data && msg.payload.data.chatEvents) onChatEvent(msg.payload.data.chatEvents);
    } else if (msg.type === "next" && msg.id === "jobs") {
      HearthJobs.onEvent();
    } else if (msg.type === "next" && msg.id === "documents") {
      HearthDocs.onEvent();
    } else if (msg.type === "next" && msg.id === "plugins") {
      HearthPlugins.onEvent();
    } else if (msg.type === "next" && msg.id === "chats" && msg.payload.data) {
      const change = msg.payload.data.chatChanges;
      if (change.kind === "DELETED" && change.chatId === state.chatId) { state.chatId = null; $("#chat-view").hidden = true; }
      // The automatic title arrives after the first answer; keep the open chat's field current.
      const title = $("#rename").title;
      if (change.chat && change.chatId === state.chatId && document.activeElement !== title) title.value = change.chat.title;
      loadChats(true).catch((e) => setError("#app-error", e));
    }
  };
  ws.onclose = (ev) => {
    state.ws = null;
    state.wsReady = false;
    state.eventsId = null;
    // 4401/4403: this login ended (logout elsewhere, deactivation, expiry): back to the form.
    if (ev.code === 4401 || ev.code === 4403) {
      state.me = null;
      $("#auth").hidden = false; $("#app").hidden = true; $("#nav").hidden = true;
      setError("#auth-error", ev.code === 4403 ? "This account was disabled." : "Your session ended; please log in again.");
      return;
    }
    // Anything else (a restart, a proxy's idle close): reconnect, waiting longer each time.
    if (state.me) {
      const wait = state.retry = Math.min((state.retry || 500) * 2, 30000);
      setTimeout(() => { if (state.me && !state.ws) subscribe(); }, wait);
    }
  };
}

function bind() {
  HearthJobs.bind();
  HearthDocs.bind();
  HearthPlugins.bind();
  HearthBackup.bind();
  $("#login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    try { setError("#auth-error"); await login(f.user.value, f.password.value); } catch (e) { setError("#auth-error", e); }
  });
  $("#register-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    try {
      setError("#auth-error");
      const body = { email: f.email.value, username: f.username.value, password: f.password.value };
      if (f.setup_token.value.trim()) body.setup_token = f.setup_token.value.trim();
      await postJson("/api/auth/register", body);
      await login(f.username.value, f.password.value);
    } catch (e) { setError("#auth-error", e); }
  });
  $("#show-register").addEventListener("click", (ev) => { ev.preventDefault(); $("#login-form").hidden = true; $("#register-form").hidden = false; });
  $("#show-login").addEventListener("click", (ev) => { ev.preventDefault(); $("#login-form").hidden = false; $("#register-form").hidden = true; });
  $("#logout").addEventListener("click", async () => {
    try { await postJson("/auth/logout"); } catch (e) { /* already logged out */ }
    sessionStorage.removeItem("hearth.csrf");
    state.csrf = "";
    if (state.ws) state.ws.close();
    location.reload();
  });
  $("#new-chat").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const agentId = ev.target.agent.value || null;
      const { createChat } = await gql("mutation($a: ID) { createChat(input: {agentId: $a}) { id } }", { a: agentId });
      await loadChats(true);
      await openChat(createChat.id);
    } catch (e) { setError("#app-error", e); }
  });
  $("#rename").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try { await gql("mutation($id: ID!, $t: String!) { renameChat(id: $id, title: $t) { id } }", { id: state.chatId, t: ev.target.title.value }); await loadChats(true); }
    catch (e) { setError("#app-error", e); }
  });
  $("#delete-chat").addEventListener("click", async () => {
    if (!state.chatId || !confirm("Delete this chat and its messages?")) return;
    try {
      await gql("mutation($id: ID!) { deleteChat(id: $id) }", { id: state.chatId });
      state.chatId = null;
      $("#chat-view").hidden = true;
      history.replaceState(null, "", "#/chats");
      await loadChats(true);
    }
    catch (e) { setError("#app-error", e); }
  });
  $("#new-agent").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    const input = { name: f.name.value, systemPrompt: f.systemPrompt.value, temperature: parseFloat(f.temperature.value), isPublic: f.isPublic.checked,
      tools: Array.from(f.tools.selectedOptions).map((o) => o.value) };
    if (f.model.value.trim()) input.model = f.model.value.trim();
    try { await gql("mutation($i: CreateAgentInput!) { createAgent(input: $i) { id } }", { i: input }); f.reset(); await loadAgents(); }
    catch (e) { setError("#app-error", e); }
  });
  $("#compose").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    const content = f.content.value.trim();
    if (!content || !state.chatId) return;
    try {
      setError("#app-error");
      const { sendMessage } = await gql("mutation($i: SendMessageInput!) { sendMessage(input: $i) { userMessage { content } assistantMessageId } }", { i: { chatId: state.chatId, content } });
      const answer = document.getElementById(`msg-${sendMessage.assistantMessageId}`);
      const mine = messageItem("user", sendMessage.userMessage.content);
      if (answer) answer.before(mine); else $("#messages").append(mine);
      f.reset();
    } catch (e) { setError("#app-error", e); }
  });
  $("#compose").content.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); $("#compose").requestSubmit(); }
  });
  $("#stop").addEventListener("click", async () => {
    try { await gql("mutation($c: ID!) { cancelTurn(chatId: $c) }", { c: state.chatId }); } catch (e) { setError("#app-error", e); }
  });
  let timer;
  $("#search").addEventListener("input", (ev) => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.search = ev.target.value.trim(); loadChats(true).catch((e) => setError("#app-error", e)); }, 250);
  });
  $("#more").addEventListener("click", () => loadChats(false).catch((e) => setError("#app-error", e)));
  window.addEventListener("hashchange", () => route());
  // Shortcuts: Alt+N new chat, Esc stops the answer being written.
  document.addEventListener("keydown", (ev) => {
    if ($("#app").hidden) return;
    if (ev.altKey && ev.code === "KeyN") {
      ev.preventDefault();
      if (parseHash()[0] !== "chats") location.hash = "#/chats";
      $("#new-chat").requestSubmit();
    } else if (ev.key === "Escape" && !$("#stop").hidden) {
      ev.preventDefault();
      $("#stop").click();
    }
  });
}

bind();
start();
