// Hearth web UI, admin page's usage and rate limits: tokens spent this month per user and
// model (the `usage` query), and the budgets every door spends (the `rateLimits` query),
// which an admin changes in place (`setRateLimit`, `resetRateLimit`: every process applies
// them at once and they outlive restarts). Uses app.js's helpers ($, text, gql, setError).
"use strict";

const HearthUsage = (() => {
  function monthStart(today) {
    return `${today.slice(0, 8)}01`;
  }

  async function loadUsage() {
    const today = new Date().toISOString().slice(0, 10);
    const data = await gql(
      "query($from: NaiveDate!, $to: NaiveDate!) { usage(from: $from, to: $to, groupBy: [USER, MODEL]) { userId model requests promptTokens completionTokens totalTokens } users(limit: 100) { users { id username } } }",
      { from: monthStart(today), to: today },
    );
    const names = new Map(data.users.users.map((u) => [u.id, u.username]));
    const rows = data.usage.map((r) => {
      const tr = document.createElement("tr");
      tr.append(
        text("td", names.get(r.userId) || `#${r.userId}`),
        text("td", r.model),
        text("td", String(r.requests)),
        text("td", String(r.promptTokens)),
        text("td", String(r.completionTokens)),
        text("td", String(r.totalTokens)),
      );
      return tr;
    });
    $("#usage tbody").replaceChildren(...rows);
    $("#usage-note").textContent = rows.length
      ? `Since ${monthStart(today)} (UTC).`
      : `No model calls since ${monthStart(today)} (UTC).`;
  }

  const LIMIT_FIELDS = "name budget configured overridden perAddress doors";

  async function saveLimit(name, budget) {
    setError("#rate-limits-error", "");
    try {
      if (budget === null) {
        await gql("mutation($n: String!) { resetRateLimit(name: $n) { name } }", { n: name });
      } else {
        await gql("mutation($n: String!, $b: String!) { setRateLimit(name: $n, budget: $b) { name } }", { n: name, b: budget });
      }
      await loadLimits();
    } catch (err) {
      setError("#rate-limits-error", err);
    }
  }

  function limitRow(l) {
    const tr = document.createElement("tr");
    tr.dataset.name = l.name;
    const input = document.createElement("input");
    input.value = l.budget;
    input.size = 10;
    input.setAttribute("aria-label", `${l.name} budget`);
    const save = text("button", "Save");
    save.type = "button";
    save.addEventListener("click", () => saveLimit(l.name, input.value.trim()));
    input.addEventListener("keydown", (e) => { if (e.key === "Enter") saveLimit(l.name, input.value.trim()); });
    const allows = document.createElement("td");
    allows.append(input, " ", save);
    const configured = text("td", l.configured === "0" ? "off" : l.configured);
    if (l.overridden) {
      const reset = text("button", "Reset", "link");
      reset.type = "button";
      reset.title = "Return to the budget hearth.toml sets";
      reset.addEventListener("click", () => saveLimit(l.name, null));
      configured.append(" ", reset);
      tr.classList.add("overridden");
    }
    tr.append(text("td", l.name), allows, configured,
      text("td", l.perAddress ? "client address" : "user or API key"), text("td", l.doors));
    return tr;
  }

  async function loadLimits() {
    const { rateLimits } = await gql(`{ rateLimits { ${LIMIT_FIELDS} } }`);
    $("#rate-limits tbody").replaceChildren(...rateLimits.map(limitRow));
  }

  async function show() {
    await Promise.all([loadUsage(), loadLimits()]);
  }

  return { show };
})();
